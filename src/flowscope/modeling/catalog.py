"""The model catalog: model types, their default parameters and search spaces.

Each model type names a classifier and/or a regressor class, small deterministic default
parameters (a seed, ``n_jobs=1`` so that two runs with the same seed give the same model
on any machine) and a search space for tuning. Estimator classes are imported only when
an estimator is built, so importing the catalog stays light. What a saved catalog model
may hold is in :mod:`flowscope.modeling.trusted_types` (re-exported here).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flowscope.errors import FlowscopeError
from flowscope.modeling.trusted_types import SKOPS_TRUSTED_TYPES, trusted_types_for

__all__ = [
    "CATALOG",
    "MODEL_TYPES",
    "SKOPS_TRUSTED_TYPES",
    "ModelType",
    "build_estimator",
    "coerce_param",
    "estimator_class",
    "get_model_type",
    "models_for",
    "trusted_types_for",
]

CLASSIFICATION = ("binary", "multiclass", "classification")
PROBLEMS = (*CLASSIFICATION, "regression", "quantile")

# A search space maps a parameter to ("int", low, high), ("float", low, high, log) or
# ("categorical", [choices]); the tuning module turns these into Optuna suggestions.
SearchSpace = Mapping[str, tuple[Any, ...]]

_TREES: SearchSpace = {
    "n_estimators": ("int", 50, 500),
    "max_depth": ("int", 2, 32),
    "min_samples_leaf": ("int", 1, 20),
    "max_features": ("float", 0.1, 1.0, False),
}
# colsample_bytree and subsample are LightGBM's feature_fraction and bagging_fraction
# under the names its scikit-learn classes take.
_LIGHTGBM_SPACE: SearchSpace = {
    "num_leaves": ("int", 10, 100),
    "learning_rate": ("float", 0.01, 0.3, True),
    "colsample_bytree": ("float", 0.5, 1.0, False),
    "subsample": ("float", 0.5, 1.0, False),
    "n_estimators": ("int", 50, 500),
}
_LIGHTGBM_DEFAULTS: Mapping[str, Any] = {
    "n_estimators": 100,
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_child_samples": 20,
    # subsample only takes effect with a bagging frequency; 1 lets tuning vary it.
    "subsample_freq": 1,
    "n_jobs": 1,
}


@dataclass(frozen=True)
class ModelType:
    """One entry of the catalog: estimator classes as ``"module:Class"`` (None where the
    model does not do that problem), default parameters and the tuning search space."""

    name: str
    description: str
    classifier: str | None
    regressor: str | None
    defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: SearchSpace = field(default_factory=dict)
    seed_param: str | None = "random_state"
    quantile: bool = False

    def supports(self, problem: str) -> bool:
        if problem in CLASSIFICATION:
            return self.classifier is not None
        if problem == "quantile":
            return self.quantile
        return self.regressor is not None


CATALOG: dict[str, ModelType] = {
    model.name: model
    for model in (
        ModelType(
            "random_forest",
            "scikit-learn random forest",
            "sklearn.ensemble:RandomForestClassifier",
            "sklearn.ensemble:RandomForestRegressor",
            {"n_estimators": 100, "n_jobs": 1},
            _TREES,
        ),
        ModelType(
            "extra_trees",
            "scikit-learn extremely randomised trees",
            "sklearn.ensemble:ExtraTreesClassifier",
            "sklearn.ensemble:ExtraTreesRegressor",
            {"n_estimators": 100, "n_jobs": 1},
            _TREES,
        ),
        ModelType(
            "gradient_boosting",
            "scikit-learn gradient boosting",
            "sklearn.ensemble:GradientBoostingClassifier",
            "sklearn.ensemble:GradientBoostingRegressor",
            {"n_estimators": 100, "learning_rate": 0.1, "max_depth": 3},
            {
                "n_estimators": ("int", 50, 500),
                "learning_rate": ("float", 0.01, 0.3, True),
                "max_depth": ("int", 2, 8),
                "min_samples_leaf": ("int", 1, 50),
                "subsample": ("float", 0.5, 1.0, False),
            },
        ),
        ModelType(
            "xgboost",
            "XGBoost gradient boosting (histogram trees)",
            "xgboost:XGBClassifier",
            "xgboost:XGBRegressor",
            {
                "n_estimators": 100,
                "learning_rate": 0.1,
                "max_depth": 6,
                "tree_method": "hist",
                "n_jobs": 1,
                "verbosity": 0,
            },
            {
                "max_depth": ("int", 3, 15),
                "learning_rate": ("float", 0.01, 0.3, True),
                "subsample": ("float", 0.5, 1.0, False),
                "colsample_bytree": ("float", 0.5, 1.0, False),
                "n_estimators": ("int", 50, 500),
            },
        ),
        ModelType(
            "lightgbm",
            "LightGBM gradient boosting",
            "lightgbm:LGBMClassifier",
            "lightgbm:LGBMRegressor",
            {**_LIGHTGBM_DEFAULTS, "verbose": -1},
            _LIGHTGBM_SPACE,
        ),
        ModelType(
            "knn",
            "k nearest neighbours",
            "sklearn.neighbors:KNeighborsClassifier",
            "sklearn.neighbors:KNeighborsRegressor",
            {"n_neighbors": 5, "weights": "uniform", "n_jobs": 1},
            {
                "n_neighbors": ("int", 1, 50),
                "weights": ("categorical", ["uniform", "distance"]),
                "p": ("categorical", [1, 2]),
            },
            seed_param=None,
        ),
        ModelType(
            "logistic_regression",
            "logistic regression (L2, lbfgs)",
            "sklearn.linear_model:LogisticRegression",
            None,
            {"C": 1.0, "max_iter": 1000},
            {"C": ("float", 1e-3, 1e3, True)},
        ),
        ModelType(
            "ridge",
            "ridge (L2-penalised linear) regression",
            None,
            "sklearn.linear_model:Ridge",
            {"alpha": 1.0},
            {"alpha": ("float", 1e-3, 1e3, True)},
        ),
        ModelType(
            "lightgbm_quantile",
            "LightGBM quantile regression (one booster per quantile)",
            None,
            "flowscope.modeling.quantile:QuantileLGBMRegressor",
            {"quantiles": (0.1, 0.5, 0.9), **_LIGHTGBM_DEFAULTS, "learning_rate": 0.05},
            _LIGHTGBM_SPACE,
            quantile=True,
        ),
    )
}
MODEL_TYPES = tuple(CATALOG)


def get_model_type(name: str) -> ModelType:
    """The catalog entry called ``name``; an unknown name is an error listing the known."""
    try:
        return CATALOG[name]
    except (KeyError, TypeError):
        raise FlowscopeError(
            f"unknown model type {name!r}; known: {', '.join(MODEL_TYPES)}"
        ) from None


def models_for(problem: str) -> list[str]:
    """The names of the model types that can do ``problem``."""
    return [name for name, model in CATALOG.items() if model.supports(problem)]


def estimator_class(model_type: str, problem: str) -> type:
    """The estimator class of ``model_type`` for ``problem``, imported now."""
    model = get_model_type(model_type)
    if problem not in PROBLEMS:
        raise FlowscopeError(f"unknown problem {problem!r}; use one of {', '.join(PROBLEMS)}")
    if not model.supports(problem):
        does = [] if model.classifier is None else ["classification"]
        if model.regressor is not None:
            does.append("quantile regression" if model.quantile else "regression")
        raise FlowscopeError(
            f"{model_type} does {' and '.join(does)}, not {problem}; "
            f"for {problem} use one of: {', '.join(models_for(problem))}"
        )
    path = model.classifier if problem in CLASSIFICATION else model.regressor
    module, _, name = str(path).partition(":")  # supports() said it is not None
    cls: type = getattr(importlib.import_module(module), name)
    return cls


def build_estimator(
    model_type: str,
    problem: str,
    params: Mapping[str, Any] | None = None,
    seed: int | None = 0,
) -> Any:
    """Build an unfitted estimator of ``model_type`` for ``problem`` ("binary",
    "multiclass", "classification", "regression" or "quantile") from the defaults, the
    seed and ``params``.

    Parameters may be strings as typed on a command line (``n_estimators="200"``,
    ``max_depth="none"``, ``quantiles="0.05,0.5,0.95"``); they are converted to the type of
    the default, or of the estimator's own default. An unknown parameter, or a value the
    estimator rejects, is an error naming it.

    >>> build_estimator("random_forest", "multiclass", {"n_estimators": "200"}, seed=1)
    RandomForestClassifier(n_estimators=200, n_jobs=1, random_state=1)
    """
    model = get_model_type(model_type)
    cls = estimator_class(model_type, problem)
    reference = cls().get_params(deep=False)
    values: dict[str, Any] = dict(model.defaults)
    if model.seed_param is not None and seed is not None:
        values[model.seed_param] = seed
    for name, value in (params or {}).items():
        if name not in reference:
            raise FlowscopeError(
                f"unknown parameter {name!r} for {model_type} ({cls.__name__}); "
                f"valid: {', '.join(sorted(reference))}"
            )
        default = values.get(name, reference[name])
        values[name] = coerce_param(name, value, default)
        _check_magnitude(name, values[name])
        if _is_number(default) and isinstance(values[name], str) and not _checks_params(cls):
            raise FlowscopeError(
                f"parameter {name!r} of {model_type} must be a number, not {value!r}"
            )
    estimator = cls(**values)
    _validate(estimator, model_type)
    return estimator


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _checks_params(cls: type) -> bool:
    """True for scikit-learn estimators, which declare the values each parameter takes."""
    return hasattr(cls, "_parameter_constraints")


def _validate(estimator: Any, model_type: str) -> None:
    """Check the values now (scikit-learn would only at fit, after the data was loaded)."""
    levels = getattr(estimator, "_levels", None)
    if callable(levels):
        levels()
    if not _checks_params(type(estimator)):
        return
    try:
        estimator._validate_params()
    except (ValueError, TypeError) as exc:
        message = str(exc).splitlines()[0]
        raise FlowscopeError(f"bad parameter for {model_type}: {message}") from None


_NONE = {"none", "null"}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _check_magnitude(name: str, value: Any) -> None:
    """Numbers a parameter can hold: 64-bit integers (what NumPy and the native learners
    take) and finite floats. scikit-learn's own bounds are often open above, and a
    ``n_estimators`` of 10**400 would be taken as asked."""
    if isinstance(value, bool):
        return
    if isinstance(value, int) and not -(2**63) <= value < 2**63:
        raise FlowscopeError(f"parameter {name!r} is too large: {str(value)[:20]}...")
    if isinstance(value, float) and not math.isfinite(value):
        raise FlowscopeError(f"parameter {name!r} must be a finite number, not {value}")


def coerce_param(name: str, value: Any, default: Any) -> Any:
    """Convert a parameter typed as text (``"200"``, ``"0.1"``, ``"none"``, ``"true"``,
    ``"0.1,0.9"``) to the type of ``default``; values that are not strings pass unchanged.

    Text that is not of the default's type is still read as the literal it looks like
    (``max_features="sqrt"`` where the default is 1.0, ``min_samples_leaf="0.05"`` where it
    is 1): scikit-learn parameters often take more than one type, and the estimator's own
    validation has the last word.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    lowered = text.lower()
    if lowered in _NONE:
        return None
    if isinstance(default, bool):
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise FlowscopeError(f"parameter {name!r} must be true or false, not {value!r}")
    if isinstance(default, tuple | list):
        parts = [part.strip() for part in text.strip("[]()").split(",") if part.strip()]
        return type(default)(_literal(part) for part in parts)
    parsed = _literal(text)
    # "3" stays an int even where the default is a float: an int is a valid real for every
    # estimator, and where both are allowed they mean different things (max_features=3 is
    # three features, 3.0 an invalid fraction).
    if isinstance(default, int) and isinstance(parsed, float) and parsed.is_integer():
        return int(parsed)
    return parsed


def _literal(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text
