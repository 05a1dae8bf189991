"""Champion versus challenger: which rows are paired, and saying why when none can be."""

from __future__ import annotations

import pandas as pd
import pytest

import flowscope
from flowscope.config import Settings
from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import train
from flowscope.registry.champion import compare_champion, predictions_frame
from flowscope.registry.policy import BeatRule
from flowscope.registry.state import read_model_state
from flowscope.registry.version_model import load_version_model


def test_versions_trained_on_different_data_are_not_paired_without_the_holdout(
    settings: Settings,
) -> None:
    frame, target = load_builtin("breast_cancer")
    for rows in (frame.iloc[:300], frame.iloc[200:]):
        train(
            rows,
            target,
            "logistic_regression",
            task="bc",
            register="bc",
            settings=settings,
            explain=False,
        )
    state = read_model_state(settings, "bc")
    result = compare_champion(settings, state.versions[1], state.versions[2], BeatRule())
    assert not result["comparable"] and not result["passed"]
    assert "trained on different data" in result["reason"]
    assert "evaluation/holdout.parquet" in result["reason"]


def test_repredicted_frame_has_the_logged_layout(settings: Settings) -> None:
    frame, target = load_builtin("breast_cancer")
    run = train(
        frame,
        target,
        "logistic_regression",
        task="bc",
        register="bc",
        settings=settings,
        explain=False,
    )
    model = load_version_model(settings, read_model_state(settings, "bc").versions[1])
    rebuilt = predictions_frame(model, frame.head(20), target, "v1")
    assert list(rebuilt.columns) == ["row", "y_true", "y_pred", "proba_0", "proba_1"]
    features = frame.head(20).drop(columns=[target])
    assert rebuilt["y_pred"].tolist() == model.predict(features).tolist()
    assert run.metrics["accuracy"] > 0.9
    with pytest.raises(flowscope.FlowscopeError, match="needs features the hold-out lacks"):
        predictions_frame(model, frame.head(5).drop(columns=["mean_radius"]), target, "v1")


def test_a_regression_frame_carries_residuals(settings: Settings) -> None:
    frame, target = load_builtin("diabetes")
    train(frame, target, "ridge", task="db", register="db", settings=settings, explain=False)
    model = load_version_model(settings, read_model_state(settings, "db").versions[1])
    rebuilt = predictions_frame(model, frame.head(10), target, "v1")
    assert isinstance(rebuilt, pd.DataFrame)
    assert (rebuilt["residual"] == rebuilt["y_true"] - rebuilt["y_pred"]).all()
