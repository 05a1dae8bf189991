"""The allow-list of types a saved catalog model may hold, for MLflow's skops format."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from flowscope.errors import FlowscopeError

# Every type a skops dump of a fitted catalog model holds, inside flowscope's training
# pipeline (Pipeline > raw-frame cast > ColumnTransformer > imputer/scaler/one-hot > model,
# classification and regression), found by dumping each one (tests/modeling/test_catalog.py
# checks it).
# It lists the types skops trusts by itself too: a scikit-learn SVC is no catalog model
# and is refused like any other type that is not here.
SKOPS_TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        # containers and numpy values inside every dump
        "builtins.bytearray",  # an XGBoost booster's raw model
        "builtins.dict",
        "builtins.list",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "collections.OrderedDict",
        "collections.defaultdict",
        "numpy.dtype",
        "numpy.float64",
        "numpy.int64",
        "numpy.ndarray",
        "numpy.random.mtrand.RandomState",  # gradient boosting with subsample < 1
        # the training pipeline around the model
        "sklearn.pipeline.Pipeline",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._label.LabelEncoder",
        "flowscope.modeling.estimators.EncodedLabelClassifier",
        "flowscope.modeling.inputs.RawFrameCaster",
        # random_forest, extra_trees
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._classes.ExtraTreeClassifier",
        "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.tree._tree.Tree",
        # gradient_boosting: its losses, links and initial estimator
        "sklearn.ensemble._gb.GradientBoostingClassifier",
        "sklearn.ensemble._gb.GradientBoostingRegressor",
        "sklearn.dummy.DummyClassifier",
        "sklearn.dummy.DummyRegressor",
        "sklearn._loss._loss.CyHalfBinomialLoss",
        "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss",
        "sklearn._loss.loss.HalfSquaredError",
        # xgboost
        "xgboost.sklearn.XGBClassifier",
        "xgboost.sklearn.XGBRegressor",
        "xgboost.core.Booster",
        # lightgbm, lightgbm_quantile
        "lightgbm.sklearn.LGBMClassifier",
        "lightgbm.sklearn.LGBMRegressor",
        "lightgbm.basic.Booster",
        "flowscope.modeling.quantile.QuantileLGBMRegressor",
        # knn: its trees (algorithm=auto/kd_tree/ball_tree) and metrics (p=2 and p=1)
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._regression.KNeighborsRegressor",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        # logistic_regression, ridge
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.linear_model._ridge.Ridge",
    }
)


def skops_types(data: bytes) -> set[str]:
    """Every type (``module.Class``) referenced in a skops dump, read from its schema."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise FlowscopeError(f"not a skops file: {exc}") from None
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__loader__" in node:
                found.add(f"{node['__module__']}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def trusted_types_for(model: Any) -> list[str]:
    """The types to pass as ``skops_trusted_types`` when saving ``model`` with MLflow:
    those of its skops dump that skops does not trust by itself.

    Every type the model holds must be in :data:`SKOPS_TRUSTED_TYPES`; any other is
    refused by name (never trusted blindly, never pickled instead).
    """
    import skops.io

    try:
        data = skops.io.dumps(model)
    except Exception as exc:  # skops raises many types for what it cannot serialise
        raise FlowscopeError(
            f"cannot save a {type(model).__name__} safely (skops format): {exc}"
        ) from None
    outside = sorted(skops_types(data) - SKOPS_TRUSTED_TYPES)
    if outside:
        raise FlowscopeError(
            f"refusing to save a {type(model).__name__}: it holds types outside flowscope's "
            f"model catalog, which cannot be loaded safely: {', '.join(outside)}"
        )
    return list(skops.io.get_untrusted_types(data=data))
