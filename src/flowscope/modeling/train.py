"""Train, evaluate and log one model: the pipeline behind ``flowscope train`` and the demo.

Everything a user can get wrong (the data, the target, the model type, a parameter) is
checked before the run starts, so bad input never leaves a half-written run behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.config import Settings
    from flowscope.tracking.run import Run

# Distance- and gradient-based models need features on one scale; trees do not.
_SCALED_MODELS = {"knn", "logistic_regression", "ridge"}
DEFAULT_THRESHOLDS = (0.5,)


def scales_features(model_type: str) -> bool:
    """True for the model types whose pipeline standardises numeric features."""
    return model_type in _SCALED_MODELS


@dataclass
class TrainResult:
    """What one training run produced."""

    run_id: str | None
    task: str
    problem: str
    model_type: str
    metrics: dict[str, float]
    params: dict[str, Any]
    delivered: bool
    registered_version: str | None = None
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)

    @property
    def model_uri(self) -> str | None:
        return f"runs:/{self.run_id}/model" if self.run_id else None


def build_pipeline(
    features: pd.DataFrame,
    estimator: Any,
    *,
    scale: bool,
    optional: Sequence[str] | None = None,
) -> Any:
    """The raw frame cast (:class:`~flowscope.modeling.inputs.RawFrameCaster`), then
    imputation and one-hot encoding of categorical columns, in front of ``estimator``.

    ``optional`` columns may be left out of the frames the pipeline predicts (default: the
    columns of ``features`` with a missing value)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from flowscope.modeling.inputs import RawFrameCaster, optional_columns, split_columns

    numeric, categorical = split_columns(features)
    if optional is None:
        optional = optional_columns(features)
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric_steps.append(("scale", StandardScaler()))
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if categorical:
        categorical_steps = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("categorical", categorical_steps, categorical))
    preprocess = ColumnTransformer(transformers, remainder="drop")
    cast = RawFrameCaster(numeric, categorical, list(optional))
    return Pipeline([("cast", cast), ("preprocess", preprocess), ("model", estimator)])


def _check_params(estimator: Any) -> None:
    """Let scikit-learn reject a bad parameter value now rather than in the middle of a run."""
    validate = getattr(estimator, "_validate_params", None)
    if validate is None or not hasattr(estimator, "_parameter_constraints"):
        return  # XGBoost and LightGBM check their parameters only when fitting
    try:
        validate()
    except ValueError as exc:  # sklearn's InvalidParameterError is a ValueError
        raise FlowscopeError(f"invalid parameter: {exc}") from None


def train(
    frame: pd.DataFrame,
    target: str,
    model_type: str = "random_forest",
    params: Mapping[str, Any] | None = None,
    *,
    task: str,
    test_size: float = 0.2,
    seed: int = 0,
    run_name: str | None = None,
    thresholds: Sequence[float] | None = None,
    register: str | None = None,
    dataset_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    settings: Settings | None = None,
    explain: bool = True,
    sensitive: str | None = None,
    class_names: Mapping[Any, str] | None = None,
    dataset_file: str | Path | None = None,
    on_run_started: Callable[[Run], None] | None = None,
) -> TrainResult:
    """Fit ``model_type`` on ``frame`` to predict ``target`` and log the run of ``task``.

    The run gets the parameters, the dataset profile, the environment, training and
    inference time, the evaluation on a held-out split (per class, per threshold, curves,
    predictions), per-round validation metrics for boosted models with their best round,
    and the model with its signature (registered as ``register`` when given). With
    ``explain`` (the default) it gets SHAP explanations of up to 1,000 held-out rows
    (a model that cannot be explained gets the tag ``flowscope.explain.skipped`` instead);
    with ``sensitive`` fairness metrics across the groups of that column.

    ``class_names`` maps class labels to names shown beside them (breast cancer's 0 is
    "malignant"); by default they come from ``frame.attrs["flowscope.class_names"]``,
    which :func:`~flowscope.modeling.data.load_builtin` sets. ``dataset_file`` (the file the
    frame was read from) is kept under ``dataset/``; ``on_run_started`` is handed the run as
    soon as it has started (a job's progress). They are kept in the model's
    metadata and the evaluation's JSON; metric names keep the labels (``recall_0``).

    The model takes frames as ``frame`` holds them: its signature declares integer
    columns ``long`` and every column with a missing value optional, and the pipeline
    casts (see :mod:`flowscope.modeling.inputs`), so ``mlflow.pyfunc`` and ``mlflow models
    serve`` answer the raw table.

    >>> from flowscope.modeling.data import load_builtin          # doctest: +SKIP
    >>> frame, target = load_builtin("iris")
    >>> train(frame, target, "random_forest", task="iris").metrics["accuracy"]
    """
    from sklearn.model_selection import train_test_split

    from flowscope.config import load_settings
    from flowscope.modeling.catalog import build_estimator
    from flowscope.modeling.data import validate_training_data
    from flowscope.modeling.estimators import EncodedLabelClassifier, needs_label_encoding
    from flowscope.modeling.inputs import model_signature, optional_columns, split_columns

    settings = settings or load_settings()
    if not 0 < test_size < 1:
        raise FlowscopeError(f"test_size must be between 0 and 1, not {test_size}")
    problem = validate_training_data(frame, target)
    if model_type == "lightgbm_quantile":
        if problem != "regression":
            raise FlowscopeError(
                f"lightgbm_quantile predicts quantiles of a numeric target; {target!r} is "
                f"a {problem} target"
            )
        problem = "quantile"
    estimator_problem = "regression" if problem == "quantile" else problem
    estimator = build_estimator(model_type, estimator_problem, params, seed)
    _check_params(estimator)
    model_params = {key: value for key, value in estimator.get_params(deep=False).items()}
    if needs_label_encoding(estimator) and problem in ("binary", "multiclass"):
        estimator = EncodedLabelClassifier(estimator)

    labelled = frame.dropna(subset=[target])
    features = labelled.drop(columns=[target])
    y = labelled[target]
    label_names = None
    if problem in ("binary", "multiclass"):
        label_names = _label_names(frame, y, class_names)
    split_columns(features)  # refuse unusable column types before the run starts
    # Rows without a target still show which columns the data leaves empty.
    every_row = frame.drop(columns=[target])
    optional = optional_columns(every_row)
    if sensitive is not None:
        from flowscope.explain.fairness import check_sensitive

        check_sensitive(features, sensitive, target, problem)
    stratify = y if problem in ("binary", "multiclass") else None
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            features, y, test_size=test_size, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise FlowscopeError(f"cannot split the data into train and test sets: {exc}") from None
    pipeline = build_pipeline(
        features, estimator, scale=scales_features(model_type), optional=optional
    )

    from flowscope.tracking import start_run
    from flowscope.tracking.models import class_names_metadata

    logged_params = {
        "model_type": model_type,
        "target": target,
        "problem": problem,
        "test_size": test_size,
        "dataset": dataset_name or "dataframe",
        "model": _loggable(model_params),
    }
    with start_run(
        task,
        run_name=run_name or model_type,
        params=logged_params,
        tags={"flowscope.model_type": model_type, **(tags or {})},
        seeds={"seed": seed},
        settings=settings,
    ) as run:
        if on_run_started is not None:
            on_run_started(run)
        if dataset_file is not None:
            run.log_artifact(dataset_file, "dataset")
        run.log_dataset(X_train.assign(**{target: y_train}), target, source=dataset_name)
        try:  # the estimator's words about the data, in fitting or in predicting
            with run.timer("training"):
                pipeline.fit(X_train, y_train)
            result = _evaluate(run, pipeline, X_test, y_test, problem, thresholds, label_names)
        except (ValueError, TypeError) as exc:
            said = str(exc).strip().splitlines()
            raise FlowscopeError(
                f"{model_type} could not be trained on this data"
                + (f": {said[0][:300]}" if said else "")
            ) from exc
        history = _log_history(run, pipeline, X_test, y_test, problem)
        if explain or sensitive is not None:
            from flowscope.explain.training import explain_training_run

            explain_training_run(
                run, pipeline, X_test, y_test, explain=explain, sensitive=sensitive
            )
        example = X_train.head(5)
        run.log_model(
            pipeline,
            input_example=example,
            signature=model_signature(every_row, pipeline.predict(example)),
            register=register,
            metadata=None if label_names is None else class_names_metadata(label_names),
        )
    delivered = run.end()
    return TrainResult(
        run_id=run.run_id,
        task=task,
        problem=problem,
        model_type=model_type,
        metrics=result,
        params=logged_params,
        delivered=delivered,
        registered_version=_registered_version(settings, register, run.run_id),
        history=history,
    )


def _evaluate(
    run: Any,
    pipeline: Any,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    problem: str,
    thresholds: Sequence[float] | None,
    class_names: Mapping[Any, str] | None,
) -> dict[str, float]:
    import time

    from flowscope.modeling.estimators import final_estimator

    started = time.perf_counter()
    with run.timer("inference"):
        if problem == "quantile":
            transformed = pipeline[:-1].transform(X_test)
            quantiles = final_estimator(pipeline).predict_quantiles(transformed)
        elif problem in ("binary", "multiclass"):
            predicted = pipeline.predict(X_test)
            scores = pipeline.predict_proba(X_test) if hasattr(pipeline, "predict_proba") else None
        else:
            predicted = pipeline.predict(X_test)
    per_row_ms = (time.perf_counter() - started) * 1000 / max(len(X_test), 1)
    run.log_metrics({"inference_time_per_row_ms": per_row_ms})
    if problem == "quantile":
        evaluation = run.log_evaluation(y_test, quantiles=quantiles)
    elif problem in ("binary", "multiclass"):
        if scores is not None and problem == "binary":
            scores = scores[:, 1]
        evaluation = run.log_evaluation(
            y_test,
            predicted,
            scores,
            labels=list(pipeline.classes_),
            thresholds=(thresholds or DEFAULT_THRESHOLDS) if problem == "binary" else None,
            class_names=class_names,
        )
    else:
        evaluation = run.log_evaluation(y_test, predicted, problem="regression")
    return dict(evaluation.metrics)


def _log_history(
    run: Any, pipeline: Any, X_test: pd.DataFrame, y_test: pd.Series, problem: str
) -> list[tuple[int, dict[str, float]]]:
    """Per-round validation metrics of boosted models, with their best round summarised."""
    from flowscope.modeling.estimators import final_estimator
    from flowscope.modeling.iterations import is_iterative, validation_history

    model = final_estimator(pipeline)
    if problem == "quantile" or not is_iterative(model):
        return []
    classification = problem in ("binary", "multiclass")
    run.track_best(
        "val_accuracy" if classification else "val_rmse", "max" if classification else "min"
    )
    transformed = pipeline[:-1].transform(X_test)
    classes = pipeline.classes_ if classification else None
    history = list(validation_history(model, transformed, y_test, problem=problem, classes=classes))
    for step, values in history:
        run.log_metrics(values, step=step)
    return history


def _label_names(
    frame: pd.DataFrame, y: pd.Series, given: Mapping[Any, str] | None
) -> dict[Any, str]:
    """Each class label (in the order the classifier will know them) with its name:
    ``given``, else what the frame carries in its attrs, else the label as text."""
    import numpy as np

    from flowscope.modeling.data import CLASS_NAMES_ATTR
    from flowscope.tracking.evaluation import class_names_for

    names = given if given is not None else frame.attrs.get(CLASS_NAMES_ATTR)
    classes = list(np.unique(y.to_numpy()))  # the classifier's classes_, as scikit-learn sorts
    return dict(zip(classes, class_names_for(classes, names), strict=True))


def _loggable(params: Mapping[str, Any]) -> dict[str, Any]:
    """Model parameters as MLflow can keep them (no nested estimators or callables)."""
    kept: dict[str, Any] = {}
    for key, value in params.items():
        if value is None:
            continue  # "the library's default": logging it only clutters comparisons
        if isinstance(value, bool | int | float | str):
            kept[key] = value
        elif isinstance(value, list | tuple) and all(
            isinstance(item, bool | int | float | str) for item in value
        ):
            kept[key] = list(value)
    return kept


def _registered_version(settings: Settings, name: str | None, run_id: str | None) -> str | None:
    if not name or not run_id:
        return None
    from flowscope.mlflow_client import client_for

    client = client_for(settings)
    versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return str(max(int(v.version) for v in versions)) if versions else None
