"""Explanations of served predictions: ``POST /predict?explain=true``.

Each row gets the SHAP contributions of its input columns to the output it was given (the
predicted class's probability or log-odds for a classifier, the prediction for a
regressor) and the base value they add to, in the space the explainer states. Tree models
use their exact TreeSHAP (the boosters' own contributions for XGBoost and LightGBM), so an
explained request costs milliseconds more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    from flowscope.serving.model import Predicted, ServedModel

EXPLAIN_VALUES = ("1", "true", "yes")


@dataclass
class ExplainRequest:
    """A parsed request that asked for explanations; ``columns`` are its checked inputs."""

    columns: dict[str, list[Any]]


@dataclass
class RowExplanations:
    """The contributions of every input column, per row, to that row's explained output."""

    features: list[str]
    contributions: np.ndarray  # rows × features
    base_values: np.ndarray  # rows
    outputs: list[str]  # the output each row's contributions explain
    output_space: str

    def rows(self) -> list[dict[str, Any]]:
        return [
            {
                "output": output,
                "output_space": self.output_space,
                "base_value": float(base),
                "contributions": dict(zip(self.features, map(float, row), strict=True)),
            }
            for output, base, row in zip(
                self.outputs, self.base_values, self.contributions, strict=True
            )
        ]


def wants_explanation(query: Any) -> bool:
    return str(query.get("explain", "")).lower() in EXPLAIN_VALUES


def explain_rows(model: ServedModel, columns: dict[str, list[Any]], predicted: Predicted) -> Any:
    """SHAP contributions for the request's rows, each to the output it was given."""
    import pandas as pd

    from flowscope.explain import UnsupportedModelError, explain_model

    frame = pd.DataFrame(columns, columns=model.schema.names)
    try:
        explanation = explain_model(model.pipeline, frame, max_rows=len(frame))
    except UnsupportedModelError as exc:
        raise FlowscopeError(f"this model cannot be explained: {exc}", status=422) from None
    k = explanation.values.shape[2]
    if k == 1:
        chosen = np.zeros(len(frame), dtype=int)
    else:  # multiclass: each row's own predicted class
        index = {str(label): position for position, label in enumerate(explanation.outputs)}
        chosen = np.array([index.get(str(label), 0) for label in predicted.labels])
    rows = np.arange(len(frame))
    return RowExplanations(
        features=list(explanation.features),
        contributions=explanation.values[rows, :, chosen],
        base_values=explanation.base_values[rows, chosen],
        outputs=[explanation.outputs[c] for c in chosen],
        output_space=explanation.output_space,
    )
