"""Shared shapes of explainer results: what each explainer hands back to
``explain_model``, whatever shape its library gives."""

from __future__ import annotations

from typing import Any

import numpy as np


def result_fields(
    values: np.ndarray,
    base: np.ndarray,
    output: np.ndarray,
    space: str,
    explainer: str,
    perturbation: str,
    *,
    exact: bool = True,
) -> dict[str, Any]:
    return {
        "values": np.asarray(values, dtype=np.float64),
        "base_values": np.array(base, dtype=np.float64),
        "model_output": np.asarray(output, dtype=np.float64),
        "output_space": space,
        "explainer": explainer,
        "feature_perturbation": perturbation,
        "exact": exact,
    }


def three_d(values: Any, binary: bool) -> np.ndarray:
    """shap's many output shapes as ``rows × features × outputs`` (binary: the positive
    class only, whose contributions are the negatives of the other's)."""
    if isinstance(values, list):
        values = np.stack([np.asarray(part) for part in values], axis=-1)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2:
        array = array[:, :, None]
    if binary and array.shape[2] == 2:
        array = array[:, :, 1:]
    return array


def base_per_row(expected: Any, rows: int, binary: bool) -> np.ndarray:
    flat = np.atleast_1d(np.asarray(expected, dtype=np.float64)).ravel()
    if binary and flat.size == 2:
        flat = flat[1:]
    return np.broadcast_to(flat, (rows, flat.size)).copy()


def margin_space(classes: Any) -> str:
    if classes is None:
        return "raw"
    return "log-odds" if len(classes) == 2 else "logit"


def import_shap() -> Any:
    """shap, imported quietly: at import it sets colour maps in a way matplotlib now warns
    about, once per process, in every user's output."""
    import warnings

    from flowscope._imports import try_import

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        return try_import("shap", "explain")
