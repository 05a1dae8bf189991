"""Train, evaluate and log one model: the pipeline behind ``flowscope train`` and the demo.

Everything a user can get wrong (the data, the target, the model type, a parameter) is
checked before the run starts, so bad input never leaves a half-written run behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.config import Settings

# Distance- and gradient-based models need features on one scale; trees do not.
_SCALED_MODELS = {"knn", "logistic_regression", "ridge"}
DEFAULT_THRESHOLDS = (0.5,)


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


def build_pipeline(features: pd.DataFrame, estimator: Any, *, scale: bool) -> Any:
    """Imputation and one-hot encoding of categorical columns in front of ``estimator``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical = split_columns(features)
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
    return Pipeline([("preprocess", preprocess), ("model", estimator)])


def split_columns(features: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Numeric and categorical feature columns; any other type is refused by name."""
    import pandas as pd

    numeric: list[str] = []
    categorical: list[str] = []
    for column in features.columns:
        dtype = features[column].dtype
        if pd.api.types.is_bool_dtype(dtype):
            categorical.append(str(column))
        elif pd.api.types.is_numeric_dtype(dtype):
            numeric.append(str(column))
        elif (
            pd.api.types.is_object_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
            or pd.api.types.is_string_dtype(dtype)
        ):
            categorical.append(str(column))
        else:
            raise FlowscopeError(
                f"column {column!r} has type {dtype}, which flowscope cannot use as a feature; "
                "convert it to numbers or text, or drop it"
            )
    return numeric, categorical


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
) -> TrainResult:
    """Fit ``model_type`` on ``frame`` to predict ``target`` and log the run of ``task``.

    The run gets the parameters, the dataset profile, the environment, training and
    inference time, the evaluation on a held-out split (per class, per threshold, curves,
    predictions), per-round validation metrics for boosted models with their best round,
    and the model with its signature (registered as ``register`` when given). With
    ``explain`` (the default) it gets SHAP explanations of up to 1,000 held-out rows
    (a model that cannot be explained gets the tag ``flowscope.explain.skipped`` instead);
    with ``sensitive`` fairness metrics across the groups of that column.

    >>> from flowscope.modeling.data import load_builtin          # doctest: +SKIP
    >>> frame, target = load_builtin("iris")
    >>> train(frame, target, "random_forest", task="iris").metrics["accuracy"]
    """
    from sklearn.model_selection import train_test_split

    from flowscope.config import load_settings
    from flowscope.modeling.catalog import build_estimator
    from flowscope.modeling.data import validate_training_data
    from flowscope.modeling.estimators import EncodedLabelClassifier, needs_label_encoding

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
    split_columns(features)  # refuse unusable column types before the run starts
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
    pipeline = build_pipeline(features, estimator, scale=model_type in _SCALED_MODELS)

    from flowscope.tracking import start_run

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
        run.log_dataset(X_train.assign(**{target: y_train}), target, source=dataset_name)
        with run.timer("training"):
            pipeline.fit(X_train, y_train)
        result = _evaluate(run, pipeline, X_test, y_test, problem, thresholds)
        history = _log_history(run, pipeline, X_test, y_test, problem)
        if explain or sensitive is not None:
            from flowscope.explain.training import explain_training_run

            explain_training_run(
                run, pipeline, X_test, y_test, explain=explain, sensitive=sensitive
            )
        run.log_model(pipeline, input_example=_input_example(X_train), register=register)
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


def _input_example(features: pd.DataFrame) -> pd.DataFrame:
    """A few training rows, integer columns as floats: the signature then accepts the
    missing values a served model meets (an integer column cannot hold NaN)."""
    example = features.head(5).copy()
    for column in example.columns:
        if example[column].dtype.kind in "iu":
            example[column] = example[column].astype("float64")
    return example


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
    from flowscope.tracking.opening import mlflow_client

    client = mlflow_client(settings)
    versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    return str(max(int(v.version) for v in versions)) if versions else None
