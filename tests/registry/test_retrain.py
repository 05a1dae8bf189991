"""Retraining end to end on breast_cancer: a weak champion is replaced on the new hold-out,
and a challenger no better than the champion stays out, each with its reason."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.errors import FlowscopeError
from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import train
from flowscope.registry import decision_history, parse_policy, promote, retrain
from flowscope.registry.champion import HOLDOUT_ARTIFACT
from flowscope.registry.tags import LIFECYCLE_TAG

POLICY = parse_policy(
    """
stages:
  production:
    gates: ["accuracy >= 0.5"]
    require: [signature, evaluation]
    beat: {metric: accuracy, alpha: 0.05}
archive:
  replaced: [production]
""",
    source="test.yaml",
)


def test_retraining_replaces_a_weak_champion_and_keeps_a_strong_one(
    settings: Settings, tmp_path
) -> None:
    frame, target = load_builtin("breast_cancer")
    noisy = frame.copy()
    flip = np.random.default_rng(1).random(len(frame)) < 0.3
    noisy.loc[flip, target] = 1 - noisy.loc[flip, target]
    train(
        noisy,
        target,
        "knn",
        {"n_neighbors": "1"},
        task="bc",
        register="bc",
        settings=settings,
        explain=False,
    )
    assert promote(settings, "bc", POLICY).plan.aliases_after == {"production": 1}
    csv = tmp_path / "new.csv"
    frame.to_csv(csv, index=False)

    result = retrain(settings, "bc", frame, dataset_name=str(csv), explain=False)
    assert (result.champion, result.challenger) == (1, 2)
    decision = result.decision
    assert decision["after"] == "production", decision["reason"]
    assert "beats champion v1" in decision["reason"]
    comparison = decision["comparison"]
    assert comparison["basis"] == "champion v1 re-predicted on challenger v2's 114 held-out rows"
    verdict = comparison["verdict"]
    assert verdict["value_a"] == pytest.approx(result.metrics["accuracy"])
    assert verdict["significant"] and verdict["mcnemar"]["p_value"] < 0.05
    client = MlflowClient(settings.tracking_uri)
    run = client.get_run(result.run_id)
    assert run.data.params["model_type"] == "knn" and run.data.params["model.n_neighbors"] == "1"
    assert run.data.tags["flowscope.retrained_from"] == "bc/1"
    assert HOLDOUT_ARTIFACT in [a.path for a in client.list_artifacts(result.run_id, "evaluation")]
    assert client.get_model_version("bc", "1").tags[LIFECYCLE_TAG] == "archived"

    # The policy applied last is the default; the new champion is not beaten by its twin.
    again = retrain(settings, "bc", frame, dataset_name=str(csv), seed=3, explain=False)
    assert again.champion == 2
    assert again.decision["after"] == "candidate"
    assert "stays out" in again.decision["reason"]
    assert client.get_registered_model("bc").aliases == {"production": 2}
    commands = [d["command"] for d in decision_history(settings, "bc")["decisions"]]
    assert commands == ["retrain", "retrain", "promote"]


def test_retraining_needs_a_champion(settings: Settings) -> None:
    frame, target = load_builtin("breast_cancer")
    train(
        frame,
        target,
        "logistic_regression",
        task="bc",
        register="bc",
        settings=settings,
        explain=False,
    )
    with pytest.raises(FlowscopeError, match="has no @production version to retrain"):
        retrain(settings, "bc", frame, policy=POLICY)
