"""Saving models as MLflow models: scikit-learn pipelines in skops format, safely; and
the class names a classifier's MLmodel metadata carries."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowscope.errors import FlowscopeError

# The MLmodel ``metadata`` key of ``{str(label): name}``: saved at training, read by serving.
CLASS_NAMES_KEY = "flowscope.class_names"


def class_names_metadata(names: Mapping[Any, str]) -> dict[str, Any]:
    """MLmodel metadata holding a classifier's class names, keyed by the labels as text
    (YAML and JSON keep text keys as they are, whatever type the labels have)."""
    return {CLASS_NAMES_KEY: {str(label): str(name) for label, name in names.items()}}


def class_names_of(metadata: Mapping[str, Any] | None) -> dict[str, str]:
    """The ``{str(label): name}`` an MLmodel's metadata holds; empty for a model logged
    without them (plain MLflow, or a regression)."""
    names = (metadata or {}).get(CLASS_NAMES_KEY)
    if not isinstance(names, Mapping):
        return {}
    return {str(label): str(name) for label, name in names.items()}


def save_model(
    model: Any,
    path: Path,
    *,
    input_example: Any = None,
    signature: Any = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Save a fitted scikit-learn estimator (or pipeline) as an MLflow model at ``path``.

    MLflow saves scikit-learn models with skops, which refuses to load types that are not
    listed as trusted. The list written into the model is exactly the types this model
    holds, each checked against the allow-list of what flowscope's catalog produces; a
    model with any other type is refused rather than trusted blindly or pickled.
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from flowscope.modeling.catalog import trusted_types_for

    if not hasattr(model, "predict"):
        raise FlowscopeError(f"cannot log a {type(model).__name__} as a model: it has no predict")
    trusted = trusted_types_for(model)
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold missing values: they cannot in
        # MLflow whatever they are declared (see flowscope.modeling.inputs), and integer
        # outputs are class labels.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        if signature is None and input_example is not None:
            signature = infer_signature(input_example, model.predict(input_example))
        mlflow.sklearn.save_model(
            model,
            str(path),
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
            skops_trusted_types=trusted,
            pip_requirements=pip_requirements(trusted),
            signature=signature,
            input_example=input_example,
            metadata=dict(metadata) if metadata else None,
        )


# Distributions a saved model needs, by the top-level module of a type it holds.
_DISTRIBUTIONS = {
    "sklearn": "scikit-learn",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "scipy": "scipy",
    "flowscope": "flowscope",
}


def pip_requirements(trusted_types: list[str]) -> list[str]:
    """Pinned requirements read from the types the model holds.

    MLflow would otherwise infer them by loading the model in a subprocess, which costs
    about 3 s per logged model; the types already say exactly what is needed.
    """
    from importlib.metadata import PackageNotFoundError, version

    needed = ["mlflow", "scikit-learn", "skops", "numpy", "pandas"]
    for name in trusted_types:
        distribution = _DISTRIBUTIONS.get(name.split(".", 1)[0])
        if distribution and distribution not in needed:
            needed.append(distribution)
    pinned = []
    for distribution in needed:
        try:
            pinned.append(f"{distribution}=={version(distribution)}")
        except PackageNotFoundError:
            pinned.append(distribution)
    return pinned


def load_model(path: str | Path) -> Any:
    """Load a model saved by :func:`save_model` without enabling MLflow's blanket
    deserialisation switch: the trusted types are re-checked against the allow-list."""
    import skops.io
    import yaml

    from flowscope.modeling.catalog import SKOPS_TRUSTED_TYPES

    root = Path(path)
    config = yaml.safe_load((root / "MLmodel").read_text())
    flavor = config.get("flavors", {}).get("sklearn", {})
    if flavor.get("serialization_format") != "skops":
        raise FlowscopeError("the model is not a skops-format scikit-learn model", detail=str(root))
    data = (root / flavor["pickled_model"]).read_bytes()
    untrusted = skops.io.get_untrusted_types(data=data)
    unknown = sorted(set(untrusted) - SKOPS_TRUSTED_TYPES)
    if unknown:
        raise FlowscopeError(
            f"refusing to load the model: it holds untrusted types {unknown}", detail=str(root)
        )
    return skops.io.loads(data, trusted=untrusted)
