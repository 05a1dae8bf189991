"""Which input column each feature a model sees comes from, through its preprocessing.

A pipeline's model sees transformed features: imputed and scaled numbers, and one
indicator column per category of each categorical input. SHAP values are additive, so
the contribution of an input column is the sum over the features made from it; this
module works out that mapping by walking the fitted preprocessing steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flowscope.modeling.estimators import final_estimator


class UnmappableStep(Exception):
    """A preprocessing step whose outputs cannot be traced back to its inputs."""


@dataclass
class FeatureMap:
    """Input columns, the transformed features the model sees, and the input column index
    each transformed feature comes from."""

    inputs: list[str]
    transformed: list[str]
    sources: np.ndarray

    def aggregate(self, values: np.ndarray) -> np.ndarray:
        """``rows × transformed × outputs`` contributions summed into ``rows × inputs ×
        outputs``; an input the model never sees (dropped) gets 0."""
        indicator = np.zeros((len(self.transformed), len(self.inputs)))
        indicator[np.arange(len(self.transformed)), self.sources] = 1.0
        return np.einsum("rto,ti->rio", values, indicator)

    def transformed_of(self, column: str) -> list[str]:
        index = self.inputs.index(column)
        return [
            name
            for name, source in zip(self.transformed, self.sources, strict=True)
            if source == index
        ]


def split_model(model: Any) -> tuple[Any | None, Any]:
    """``(preprocessing, estimator)`` of a pipeline (None when there is no preprocessing);
    the estimator is unwrapped from flowscope's label encoding."""
    steps = getattr(model, "steps", None)
    if steps is None:
        return None, final_estimator(model)
    preprocess = model[:-1] if len(steps) > 1 else None
    return preprocess, final_estimator(model)


def feature_map(preprocess: Any | None, inputs: list[str]) -> FeatureMap:
    """The :class:`FeatureMap` of ``preprocess`` fitted on columns ``inputs``; raises
    :class:`UnmappableStep` for a step it cannot trace."""
    if preprocess is None:
        return FeatureMap(list(inputs), list(inputs), np.arange(len(inputs)))
    sources = _sources(preprocess, list(range(len(inputs))), list(inputs))
    try:
        names = [str(name) for name in preprocess.get_feature_names_out()]
    except (AttributeError, ValueError, TypeError):
        names = [f"t{index}" for index in range(len(sources))]
    if len(names) != len(sources):
        raise UnmappableStep("the preprocessing names a different number of outputs")
    return FeatureMap(list(inputs), names, np.asarray(sources, dtype=np.int64))


def _sources(step: Any, current: list[int], names: list[str]) -> list[int]:
    """The input index behind each output column of ``step``, given the input index
    behind each of its input columns (``current``, whose names are ``names``)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if step is None or (isinstance(step, str) and step == "passthrough"):
        return list(current)
    if isinstance(step, Pipeline):
        for _, inner in step.steps:
            current = _sources(inner, current, names)
            names = [f"x{index}" for index in range(len(current))]
        return current
    if isinstance(step, ColumnTransformer):
        return _column_transformer_sources(step, current, names)
    if isinstance(step, OneHotEncoder):
        counts = getattr(step, "_n_features_outs", None)
        if counts is None or len(counts) != len(current):
            raise UnmappableStep("a one-hot encoder without per-column output counts")
        return [source for source, count in zip(current, counts, strict=True) for _ in range(count)]
    # A step that keeps or drops columns without making new ones (imputers, scalers):
    # its output names are a subset of its input names.
    try:
        outputs = [str(name) for name in step.get_feature_names_out()]
    except (AttributeError, ValueError, TypeError) as exc:
        raise UnmappableStep(f"{type(step).__name__} does not name its outputs") from exc
    fitted_names = getattr(step, "feature_names_in_", None)
    known = [str(name) for name in fitted_names] if fitted_names is not None else None
    if known is None:
        known = [f"x{index}" for index in range(len(current))]
    if len(known) != len(current) or any(name not in known for name in outputs):
        raise UnmappableStep(f"{type(step).__name__} makes columns that are not its inputs")
    return [current[known.index(name)] for name in outputs]


def _column_transformer_sources(step: Any, current: list[int], names: list[str]) -> list[int]:
    fitted_names = getattr(step, "feature_names_in_", None)
    own_names = [str(name) for name in fitted_names] if fitted_names is not None else names
    width = sum(part.stop - part.start for part in step.output_indices_.values())
    result = [-1] * width
    for name, transformer, columns in step.transformers_:
        part = step.output_indices_[name]
        if part.stop == part.start or (isinstance(transformer, str) and transformer == "drop"):
            continue
        indices = _column_indices(columns, own_names)
        produced = _sources(
            transformer,
            [current[index] for index in indices],
            [own_names[index] for index in indices],
        )
        if len(produced) != part.stop - part.start:
            raise UnmappableStep(f"transformer {name!r} makes an unexpected number of columns")
        result[part] = produced
    if any(source < 0 for source in result):
        raise UnmappableStep("some transformed columns come from no transformer")
    return result


def _column_indices(columns: Any, names: list[str]) -> list[int]:
    if isinstance(columns, str):
        columns = [columns]
    if isinstance(columns, slice) or callable(columns):
        raise UnmappableStep("column selectors given as slices or callables")
    selected = list(np.asarray(columns).tolist()) if not isinstance(columns, list) else columns
    if selected and all(isinstance(item, bool) for item in selected):
        return [index for index, keep in enumerate(selected) if keep]
    indices = []
    for item in selected:
        if isinstance(item, str):
            if item not in names:
                raise UnmappableStep(f"column {item!r} is not an input")
            indices.append(names.index(item))
        else:
            indices.append(int(item))
    return indices
