"""Versions for registry tests, logged through the SDK with chosen held-out outcomes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import flowscope
from flowscope.config import Settings

HEART_POLICY = Path(__file__).parents[2] / "examples" / "policies" / "heart-disease.yaml"


def outcomes(positives: int, negatives: int, false_pos: int, false_neg: int) -> tuple[Any, Any]:
    """Labels and predictions with exactly these error counts; the errors sit on the first
    rows of each class, so a version with fewer errors is right wherever a worse one is."""
    y_true = np.array([1] * positives + [0] * negatives)
    y_pred = y_true.copy()
    y_pred[:false_neg] = 0
    y_pred[positives : positives + false_pos] = 1
    return y_true, y_pred


def tiny_model() -> tuple[Any, pd.DataFrame]:
    """A fitted pipeline and its input example: the logged model a version needs."""
    from sklearn.linear_model import LogisticRegression

    from flowscope.modeling.train import build_pipeline

    rng = np.random.default_rng(0)
    features = pd.DataFrame({"age": rng.normal(55, 9, 40), "chol": rng.normal(240, 40, 40)})
    labels = (features["age"] > 55).astype(int)
    return build_pipeline(features, LogisticRegression(), scale=True).fit(features, labels), (
        features.head(5)
    )


def log_version(
    settings: Settings,
    name: str,
    y_true: Any,
    y_pred: Any,
    *,
    task: str = "heart",
    description: str | None = None,
    signature: bool = True,
) -> str:
    """Register a new version of ``name`` whose source run evaluated ``y_pred`` against
    ``y_true``; returns the version number."""
    from mlflow import MlflowClient

    model, example = tiny_model()
    with flowscope.start_run(task, settings=settings, description=description) as run:
        run.log_params({"model_type": "logistic_regression", "target": "target", "test_size": 0.2})
        run.log_evaluation(y_true, y_pred, labels=[0, 1])
        run.log_model(model, input_example=example if signature else None, register=name)
    client = MlflowClient(settings.tracking_uri)
    versions = client.search_model_versions(f"name = '{name}' and run_id = '{run.run_id}'")
    return str(versions[0].version)


def heart_versions(settings: Settings, name: str = "heart-disease") -> dict[str, str]:
    """The seed scenario on 61 held-out rows (33 sick): v1 at 0.754 accuracy, v2 at 0.918
    with class-1 precision 0.9375, recall 0.909, F1 0.923."""
    weak = log_version(settings, name, *outcomes(33, 28, 8, 7), description="first try")
    strong = log_version(settings, name, *outcomes(33, 28, 2, 3), description="tuned")
    return {"weak": weak, "strong": strong}


def snapshot(settings: Settings) -> dict[str, Any]:
    """Everything the registry holds, to show that something changed nothing."""
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri)
    state: dict[str, Any] = {}
    for model in client.search_registered_models():
        versions = client.search_model_versions(f"name = '{model.name}'")
        state[model.name] = {
            "aliases": dict(model.aliases),
            "tags": dict(model.tags),
            "versions": {v.version: dict(v.tags) for v in versions},
        }
    return state
