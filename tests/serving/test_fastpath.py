"""The exact shortcut through the training pipeline gives the pipeline's own numbers."""

from __future__ import annotations

import numpy as np
import pytest

from flowscope.serving.model import ModelRef, load_served_model
from tests.serving.conftest import IRIS_MODELS, Registry, iris_features, synthetic_frame


@pytest.mark.parametrize("kind", IRIS_MODELS)
def test_shortcut_equals_predict_proba_bit_for_bit(registry: Registry, kind: str) -> None:
    model = load_served_model(registry.settings, ModelRef.parse(f"{registry.fresh(kind)}/1"))
    assert model.fast is not None
    rng = np.random.default_rng(3)
    X = iris_features()
    noisy = X.sample(400, replace=True, random_state=3) + rng.normal(0, 0.5, (400, 4))
    noisy = noisy.mask(rng.random(noisy.shape) < 0.1)  # missing values, imputed
    columns = {name: noisy[name].tolist() for name in noisy.columns}
    expected = np.asarray(model.pipeline.predict_proba(noisy), dtype=np.float64)
    assert np.array_equal(model.predict_columns(columns).probabilities, expected)


def test_pipelines_of_another_shape_take_the_pipeline(registry: Registry) -> None:
    model = load_served_model(registry.settings, ModelRef.parse(f"{registry.fresh('synthetic')}/1"))
    assert model.fast is None  # a one-hot encoded column: no shortcut
    rows = synthetic_frame(50, seed=9).drop(columns=["label"])
    columns = {name: rows[name].tolist() for name in rows.columns}
    expected = model.pipeline.predict_proba(rows)
    np.testing.assert_array_equal(model.predict_columns(columns).probabilities, expected)
