"""The richer records a run logs: evaluations, dataset profiles and the environment."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.tracking.evaluation import Evaluation
    from flowscope.tracking.run import Run


def log_evaluation(
    run: Run,
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    *,
    labels: Any = None,
    thresholds: Any = None,
    problem: str | None = None,
    quantiles: Mapping[float, Any] | None = None,
    intervals: Any = None,
    class_names: Mapping[Any, Any] | None = None,
) -> Evaluation:
    """Evaluate predictions and log metrics plus ``evaluation/`` artifacts: metrics.json,
    confusion matrices (JSON and PNG), thresholds, curves, and the held-out predictions as
    parquet (what later significance tests compare)."""
    from flowscope.tracking import evaluation

    if quantiles is not None or problem == "quantile":
        if quantiles is None:
            raise FlowscopeError("a quantile evaluation needs the predictions per quantile")
        result = evaluation.evaluate_quantiles(y_true, quantiles, intervals)
    else:
        if problem is None:
            import pandas as pd

            from flowscope.modeling.data import infer_problem

            problem = infer_problem(pd.Series(y_true))
        if problem == "regression":
            if y_pred is None:
                raise FlowscopeError("a regression evaluation needs y_pred")
            result = evaluation.evaluate_regression(y_true, y_pred)
        elif problem in ("binary", "multiclass", "classification"):
            result = evaluation.evaluate_classification(
                y_true,
                y_pred,
                y_score,
                labels=labels,
                thresholds=thresholds,
                class_names=class_names,
            )
        else:
            raise FlowscopeError(
                f"unknown problem {problem!r}; use classification, regression or quantile"
            )
    run.log_metrics(result.metrics)
    for name, table in result.tables.items():
        run.log_dict(table, f"evaluation/{name}")
    run.log_table(result.predictions, "evaluation/predictions.parquet")
    for name, figure in result.figures.items():
        run.log_figure(figure, f"evaluation/{name}")
    return result


def log_dataset(
    run: Run,
    frame: pd.DataFrame,
    target: str | None = None,
    *,
    name: str = "train",
    context: str = "training",
    source: str | None = None,
) -> dict[str, Any]:
    """Log a dataset's profile (``dataset/profile.json`` for the training set, the drift
    reference; ``dataset/profile_<name>.json`` for others) and record it with MLflow's
    dataset tracking (``log_input``) so the MLflow UI lists it."""
    from mlflow.data.pandas_dataset import PandasDataset, from_pandas

    from flowscope.tracking.profile import profile_dataset

    profile = profile_dataset(frame, target)
    artifact = "profile.json" if name == "train" else f"profile_{name}.json"
    run.log_dict(profile, f"dataset/{artifact}")
    if name == "train":
        run.log_params({"dataset.rows": profile["rows"], "dataset.columns": profile["columns"]})
    # MLflow resolves a source string to a file or URL; a built-in dataset's name is neither.
    file_source = str(Path(source).resolve()) if source and Path(source).is_file() else None
    with warnings.catch_warnings():
        # the schema here describes the data, not a model input: integers are fine
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        # None is from_pandas's own default for source, which its annotation leaves out
        dataset: PandasDataset = from_pandas(
            frame,
            source=file_source,  # type: ignore[arg-type]
            targets=target,
            name=name,
        )
        entity = dataset._to_mlflow_entity()
    run.log_inputs_record(
        [
            {
                "name": entity.name,
                "digest": entity.digest,
                "source_type": entity.source_type,
                "source": entity.source,
                "schema": entity.schema,
                "profile": entity.profile,
                "tags": {"mlflow.data.context": context},
            }
        ]
    )
    return profile


def log_environment(
    run: Run,
    seeds: Mapping[str, int] | None = None,
    *,
    environment: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Log ``environment/environment.json`` and the seeds as ``seed.<name>`` params."""
    from flowscope.tracking.environment import capture_environment

    environment = environment or capture_environment(seeds=seeds)
    run.log_dict(environment, "environment/environment.json")
    if seeds:
        run.log_params({f"seed.{name}": value for name, value in seeds.items()})
    return environment
