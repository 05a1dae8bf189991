"""Model-agnostic Shapley values over the input columns, batched across rows.

The model is a black box called on rows whose columns come either from the explained row
(the coalition) or from a background row: the interventional game. Up to
``EXACT_MAX_FEATURES`` columns every coalition is evaluated (exact); beyond, antithetic
permutations sampled with a fixed seed (additive by construction, not exact).

shap's ``Exact`` and ``Permutation`` explainers compute the same estimators but call the
model once per row and permutation; a scikit-learn pipeline costs ~10 ms per call whatever
its size, so here the coalitions of many rows go through the model in a few large batches.
"""

from __future__ import annotations

from math import factorial
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

EXACT_MAX_FEATURES = 10
PERMUTATIONS = 10  # each also walked backwards (antithetic), so 20 orders per row
EVALUATION_BUDGET = 4_000_000  # rows pushed through the model for one explanation
_BATCH_ROWS = 200_000


def agnostic_shap(
    model: Any,
    frame: pd.DataFrame,
    background: pd.DataFrame,
    classes: list[Any] | None,
    reason: str,
) -> dict[str, Any]:
    """Shapley values of ``model``'s output (class probabilities, or the prediction) for the
    rows of ``frame`` against ``background``, as ``explain_model``'s result fields."""
    named = getattr(model, "feature_names_in_", None) is not None
    codes, background_codes, decode = _encode(frame, background, named)
    binary = classes is not None and len(classes) == 2

    def predict(matrix: np.ndarray) -> np.ndarray:
        rows = decode(matrix)
        if classes is not None:
            probabilities = np.asarray(model.predict_proba(rows), dtype=float)
            return probabilities[:, 1:] if binary else probabilities
        return np.asarray(model.predict(rows), dtype=float).reshape(-1, 1)

    columns = codes.shape[1]
    if columns <= EXACT_MAX_FEATURES:
        masks = _all_coalitions(columns)
        name, exact = "exact", True
        why = f"{reason}; exact over all 2^{columns} coalitions of the input columns"
    else:
        orders = _antithetic_orders(columns, PERMUTATIONS)
        masks = _chain_masks(orders)
        name, exact = "permutation", False
        why = (
            f"{reason}; {columns} input columns are too many for all 2^{columns} coalitions, "
            f"so {2 * PERMUTATIONS} antithetic permutations (additive, not exact)"
        )
    masks, inverse = np.unique(masks, axis=0, return_inverse=True)
    per_row = len(masks) * len(background_codes)
    rows = max(1, min(len(codes), EVALUATION_BUDGET // per_row))
    notes = []
    if rows < len(codes):
        notes.append(
            f"explained the first {rows} of {len(codes)} rows: each costs {per_row} model "
            "evaluations"
        )
    worth = _coalition_worth(predict, codes[:rows], background_codes, masks)
    worth = worth[:, inverse.ravel(), :]
    values = _exact_values(worth, columns) if exact else _permutation_values(worth, orders)
    return {
        "values": values,
        "base_values": worth[:, 0, :],  # the empty coalition: mean output on the background
        "model_output": predict(codes[:rows]),
        "output_space": "probability" if classes is not None else "raw",
        "explainer": f"flowscope_{name}",
        "feature_perturbation": "interventional",
        "exact": exact,
        "reason": why,
        "notes": notes,
    }


def _coalition_worth(
    predict: Any, codes: np.ndarray, background: np.ndarray, masks: np.ndarray
) -> np.ndarray:
    """``rows × masks × outputs``: the mean model output over the background with the
    masked-in columns taken from the row."""
    per_row = len(masks) * len(background)
    rows_per_batch = max(1, _BATCH_ROWS // per_row)
    parts = []
    for start in range(0, len(codes), rows_per_batch):
        chunk = codes[start : start + rows_per_batch]
        mixed = np.where(
            masks[None, :, None, :], chunk[:, None, None, :], background[None, None, :, :]
        )
        output = predict(mixed.reshape(-1, codes.shape[1]))
        output = output.reshape(len(chunk), len(masks), len(background), -1)
        parts.append(output.mean(axis=2))
    return np.concatenate(parts, axis=0)


def _all_coalitions(columns: int) -> np.ndarray:
    index = np.arange(2**columns)
    return ((index[:, None] >> np.arange(columns)[None, :]) & 1).astype(bool)


def _exact_values(worth: np.ndarray, columns: int) -> np.ndarray:
    """The Shapley formula over every coalition (``worth`` indexed by coalition bits)."""
    index = np.arange(2**columns)
    sizes = np.array([bin(i).count("1") for i in index])
    weight = np.array(
        [factorial(s) * factorial(columns - s - 1) / factorial(columns) for s in range(columns)]
    )
    values = np.zeros((worth.shape[0], columns, worth.shape[2]))
    for i in range(columns):
        without = index[(index >> i) & 1 == 0]
        gain = worth[:, without | (1 << i), :] - worth[:, without, :]
        values[:, i, :] = np.einsum("rsk,s->rk", gain, weight[sizes[without]])
    return values


def _antithetic_orders(columns: int, count: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    forward = np.array([rng.permutation(columns) for _ in range(count)])
    return np.concatenate([forward, forward[:, ::-1]])


def _chain_masks(orders: np.ndarray) -> np.ndarray:
    """Masks along each order: none, the first column, the first two ... all; the empty
    coalition first so that its worth (the base value) is column 0 after ``np.unique``."""
    count, columns = orders.shape
    masks = np.zeros((count, columns + 1, columns), dtype=bool)
    for k, order in enumerate(orders):
        for step in range(1, columns + 1):
            masks[k, step, order[:step]] = True
    return masks.reshape(-1, columns)


def _permutation_values(worth: np.ndarray, orders: np.ndarray) -> np.ndarray:
    count, columns = orders.shape
    chain = worth.reshape(worth.shape[0], count, columns + 1, worth.shape[2])
    gains = np.diff(chain, axis=2)  # rows × orders × steps × outputs
    values = np.zeros((worth.shape[0], columns, worth.shape[2]))
    for k, order in enumerate(orders):
        values[:, order, :] += gains[:, k, :, :]
    return values / count


def _encode(
    frame: pd.DataFrame, background: pd.DataFrame, named: bool
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Rows as numbers (text columns as category codes) and the function turning masked
    rows back into what the model takes."""
    import pandas as pd

    categories: dict[str, np.ndarray] = {}
    encoded, encoded_background = frame.copy(), background.copy()
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            continue
        _, uniques = pd.factorize(pd.concat([series, background[column]]))
        categories[column] = np.asarray(uniques, dtype=object)
        encoded[column] = pd.Categorical(series, categories=uniques).codes
        encoded_background[column] = pd.Categorical(background[column], categories=uniques).codes
    columns = list(frame.columns)
    dtypes = frame.dtypes

    def decode(codes: np.ndarray) -> Any:
        if not named and not categories:
            return codes  # a model fitted on arrays is called with arrays
        rows = pd.DataFrame(codes, columns=columns)
        for column in columns:
            if column in categories:
                index = np.rint(rows[column].to_numpy()).astype(np.int64)
                known = categories[column]
                values = np.where(index >= 0, known[np.clip(index, 0, len(known) - 1)], None)
                rows[column] = pd.Series(values, dtype=object)
            elif dtypes[column].kind in "iu" and not rows[column].isna().any():
                rows[column] = rows[column].astype(dtypes[column])
        return rows

    return (
        encoded.to_numpy(dtype=float),
        encoded_background.to_numpy(dtype=float),
        decode,
    )
