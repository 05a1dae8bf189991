"""The result of explaining a model: SHAP values per row, input column and output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# Columns of the long SHAP table that are not features; a feature may not use these names.
ROW_COLUMN = "_row"
OUTPUT_COLUMN = "_class"
BASE_COLUMN = "_base_value"
RESERVED_COLUMNS = (ROW_COLUMN, OUTPUT_COLUMN, BASE_COLUMN)

SPACE_DESCRIPTIONS = {
    "probability": "predicted probability of the class",
    "log-odds": "log-odds of the class (the model's raw margin before the sigmoid)",
    "logit": "the class's raw score before the softmax (multinomial logit)",
    "raw": "the model's prediction in the target's units",
}


@dataclass
class Explanation:
    """SHAP values of a model on some rows, stated in terms of the original input columns.

    ``values`` is ``rows × features × outputs``: one output for a regression or binary
    classification (the positive class), one per class for multiclass. Every row
    satisfies ``base_values[r, k] + values[r, :, k].sum() == model_output[r, k]`` in
    ``output_space``, up to ``additivity_error``.
    """

    values: np.ndarray
    base_values: np.ndarray
    model_output: np.ndarray
    data: pd.DataFrame
    features: list[str]
    outputs: list[str]
    output_space: str
    explainer: str
    reason: str
    feature_perturbation: str
    exact: bool
    model_name: str
    rows_available: int
    background_rows: int | None = None
    transformed_values: np.ndarray | None = None
    transformed_features: list[str] | None = None
    sources: list[str] | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def additivity_error(self) -> float:
        """Largest ``|base + sum of contributions − model output|`` over rows and outputs."""
        if self.values.size == 0:
            return 0.0
        total = self.base_values + self.values.sum(axis=1)
        return float(np.max(np.abs(total - self.model_output)))

    @property
    def multiclass(self) -> bool:
        return len(self.outputs) > 1

    def mean_abs(self) -> dict[str, dict[str, float]]:
        """Mean |SHAP value| of each feature, per output, most important first."""
        means = np.abs(self.values).mean(axis=0) if len(self.values) else self.values.sum(axis=0)
        result: dict[str, dict[str, float]] = {}
        for k, output in enumerate(self.outputs):
            order = np.argsort(-means[:, k], kind="stable")
            result[output] = {self.features[j]: float(means[j, k]) for j in order}
        return result

    def frame(self) -> pd.DataFrame:
        """The SHAP values as a table: one row per explained row (and class, for
        multiclass), a column per feature, plus ``_row``, ``_class`` and ``_base_value``."""
        import pandas as pd

        parts = []
        for k, output in enumerate(self.outputs):
            part = pd.DataFrame(self.values[:, :, k], columns=self.features)
            part.insert(0, ROW_COLUMN, np.arange(len(part)))
            if self.multiclass:
                part.insert(1, OUTPUT_COLUMN, output)
            part[BASE_COLUMN] = self.base_values[:, k]
            parts.append(part)
        return pd.concat(parts, ignore_index=True)

    def summary(self) -> dict[str, Any]:
        """What ``explain/summary.json`` holds: importance per feature and class, ranks, the
        explainer and why, the output space, and the additivity error."""
        importance = self.mean_abs()
        overall = np.abs(self.values).mean(axis=(0, 2)) if len(self.values) else None
        overall_order = (
            [self.features[j] for j in np.argsort(-overall, kind="stable")]
            if overall is not None
            else list(self.features)
        )
        return {
            "explainer": self.explainer,
            "explainer_reason": self.reason,
            "model": self.model_name,
            "feature_perturbation": self.feature_perturbation,
            "exact": self.exact,
            "output_space": self.output_space,
            "output_space_description": SPACE_DESCRIPTIONS.get(self.output_space, ""),
            "outputs": list(self.outputs),
            "features": list(self.features),
            "rows": len(self.values),
            "rows_available": self.rows_available,
            "background_rows": self.background_rows,
            "base_values": {
                output: float(np.mean(self.base_values[:, k])) if len(self.base_values) else None
                for k, output in enumerate(self.outputs)
            },
            "mean_abs_shap": importance,
            "mean_abs_shap_overall": {
                feature: float(overall[self.features.index(feature)]) for feature in overall_order
            }
            if overall is not None
            else {},
            "ranks": {
                output: {feature: rank + 1 for rank, feature in enumerate(order)}
                for output, order in importance.items()
            },
            "rank_overall": {feature: rank + 1 for rank, feature in enumerate(overall_order)},
            "transformed_features": _grouped(self.transformed_features, self.sources),
            "shap_additivity_error": self.additivity_error,
            "seconds": self.seconds,
            "notes": list(self.notes),
        }


def _grouped(transformed: list[str] | None, sources: list[str] | None) -> dict[str, list[str]]:
    if transformed is None or sources is None:
        return {}
    groups: dict[str, list[str]] = {}
    for name, source in zip(transformed, sources, strict=True):
        groups.setdefault(source, []).append(name)
    return groups
