"""``promote`` on a real SQLite registry: the seed scenario, idempotence, dry runs,
champion versus challenger, gates at their boundaries, and bad input changing nothing."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.errors import NotFoundError
from flowscope.registry import decision_history, load_policy, parse_policy, promote
from flowscope.registry.policy import PolicyError
from flowscope.registry.tags import DECISION_TAG, LIFECYCLE_TAG, REASON_TAG
from tests.registry.helpers import HEART_POLICY, heart_versions, log_version, outcomes, snapshot

MODEL = "heart-disease"


@pytest.fixture
def heart(settings: Settings) -> dict[str, str]:
    return heart_versions(settings)


def lifecycle_experiment(settings: Settings) -> object:
    return MlflowClient(settings.tracking_uri).get_experiment_by_name(f"{MODEL}-lifecycle")


def test_seed_scenario_archives_the_weak_version_and_serves_the_strong_one(
    settings: Settings, heart: dict[str, str]
) -> None:
    policy = load_policy(HEART_POLICY)
    result = promote(settings, MODEL, policy)
    assert result.outcome == "applied"
    client = MlflowClient(settings.tracking_uri)
    assert dict(client.get_registered_model(MODEL).aliases) == {"production": 2}
    weak = client.get_model_version(MODEL, heart["weak"])
    strong = client.get_model_version(MODEL, heart["strong"])
    assert weak.tags[LIFECYCLE_TAG] == "archived"
    assert strong.tags[LIFECYCLE_TAG] == "production"
    assert "accuracy = 0.7541 fails accuracy >= 0.85" in weak.tags[REASON_TAG]
    decision = json.loads(strong.tags[DECISION_TAG])
    assert decision["policy_digest"] == policy.digest
    assert decision["run_id"] == result.run_id and decision["by"] == result.actor
    gates = {g["metric"]: g for g in decision["gates"]["production"]}
    assert gates["precision_1"]["value"] == pytest.approx(30 / 32)
    assert gates["recall_1"]["value"] == pytest.approx(30 / 33)
    assert all(g["passed"] for g in gates.values())
    run = client.get_run(result.run_id)
    assert run.data.tags["flowscope.kind"] == "evaluation"
    assert run.data.tags["flowscope.lifecycle.outcome"] == "applied"
    history = decision_history(settings, MODEL, details=True)
    [span] = history["aliases"]["production"]
    assert span["version"] == 2 and span["until"] is None and span["run_id"] == result.run_id
    assert history["decisions"][0]["record"]["plan"]["aliases_after"] == {"production": 2}


def test_running_again_records_a_clear_no_op_and_changes_nothing(
    settings: Settings, heart: dict[str, str]
) -> None:
    policy = load_policy(HEART_POLICY)
    promote(settings, MODEL, policy)
    before = snapshot(settings)
    again = promote(settings, MODEL, policy)
    assert again.outcome == "no-op"
    assert not again.plan.changed
    assert again.plan.summary() == "no change: the registry already matches the policy"
    assert snapshot(settings) == before
    outcomes_seen = [d["outcome"] for d in decision_history(settings, MODEL)["decisions"]]
    assert outcomes_seen == ["no-op", "applied"]


def test_dry_run_changes_and_records_nothing(settings: Settings, heart: dict[str, str]) -> None:
    before = snapshot(settings)
    result = promote(settings, MODEL, load_policy(HEART_POLICY), dry_run=True)
    assert result.outcome == "dry-run" and result.run_id is None
    assert result.plan.aliases_after == {"production": 2}
    assert snapshot(settings) == before
    assert lifecycle_experiment(settings) is None


def test_better_but_not_significantly_better_challenger_stays_out(
    settings: Settings, heart: dict[str, str]
) -> None:
    policy = load_policy(HEART_POLICY)
    promote(settings, MODEL, policy)
    # 58/61 right where the champion has 56/61: only two rows differ, McNemar p = 0.5
    challenger = log_version(settings, MODEL, *outcomes(33, 28, 1, 2))
    result = promote(settings, MODEL, policy)
    decision = next(d for d in result.plan.decisions if d.version == int(challenger))
    assert decision.after == "candidate"
    assert "not significantly better than champion v2" in decision.reason
    verdict = decision.comparison["verdict"]
    assert verdict["value_a"] > verdict["value_b"] and verdict["mcnemar"]["p_value"] == 0.5
    assert decision.comparison["basis"].startswith("kept predictions")
    client = MlflowClient(settings.tracking_uri)
    assert client.get_registered_model(MODEL).aliases == {"production": 2}
    assert client.get_model_version(MODEL, challenger).tags[LIFECYCLE_TAG] == "candidate"


def test_significantly_better_challenger_replaces_and_archives_the_champion(
    settings: Settings,
) -> None:
    champion = log_version(settings, MODEL, *outcomes(200, 200, 10, 18))  # 0.93
    policy = load_policy(HEART_POLICY)
    assert promote(settings, MODEL, policy).plan.aliases_after == {"production": 1}
    challenger = log_version(settings, MODEL, *outcomes(200, 200, 3, 4))  # 0.9825
    result = promote(settings, MODEL, policy)
    assert result.plan.aliases_after == {"production": int(challenger)}
    decisions = {str(d.version): d for d in result.plan.decisions}
    assert "beats champion v1" in decisions[challenger].reason
    assert decisions[champion].after == "archived"
    assert decisions[champion].reason == f"replaced at @production by v{challenger}"
    spans = decision_history(settings, MODEL)["aliases"]["production"]
    assert [(s["version"], s["until"] is None) for s in spans] == [(1, False), (2, True)]


def test_gates_at_their_boundaries(settings: Settings) -> None:
    log_version(settings, "edge", *outcomes(10, 10, 2, 1))  # accuracy exactly 17/20 = 0.85
    at_least = parse_policy("stages:\n  staging:\n    gates: ['accuracy >= 0.85']\n")
    above = parse_policy("stages:\n  staging:\n    gates: ['accuracy > 0.85']\n")
    assert promote(settings, "edge", at_least, dry_run=True).plan.aliases_after == {"staging": 1}
    refused = promote(settings, "edge", above, dry_run=True).plan
    assert refused.aliases_after == {}
    assert "accuracy = 0.85 fails accuracy > 0.85" in refused.decisions[0].reason


def test_bad_input_is_refused_with_the_registry_unchanged(
    settings: Settings, heart: dict[str, str]
) -> None:
    policy = load_policy(HEART_POLICY)
    before = snapshot(settings)
    with pytest.raises(NotFoundError, match="no registered model named 'nope'"):
        promote(settings, "nope", policy)
    with pytest.raises(NotFoundError, match=r"has no version 7 \(versions: 1, 2\)"):
        promote(settings, MODEL, policy, version=7)
    unknown_metric = parse_policy(
        "stages:\n  production:\n    gates: ['accuracy >= 0.9', 'auprc_1 >= 0.8']\n",
        source="typo.yaml",
    )
    with pytest.raises(PolicyError, match=r"stages.production.gates\[1\] names metric 'auprc_1'"):
        promote(settings, MODEL, unknown_metric)
    other = parse_policy("model: churn\nstages:\n  staging:\n    gates: []\n", source="churn.yaml")
    with pytest.raises(PolicyError, match="is for model 'churn', not 'heart-disease'"):
        promote(settings, MODEL, other)
    assert snapshot(settings) == before
    assert lifecycle_experiment(settings) is None
