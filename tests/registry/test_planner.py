"""The planner (registry/plan.py) on hand-made registry states: rules that need no store."""

from __future__ import annotations

from typing import Any

from flowscope.registry.plan import plan_promotion
from flowscope.registry.policy import parse_policy
from flowscope.registry.state import ModelState, VersionState

EVIDENCE = {"signature": True, "evaluation": True, "explanations": False}


def version(number: int, accuracy: float, **extra: Any) -> VersionState:
    values: dict[str, Any] = {
        "number": number,
        "run_id": f"run{number}",
        "source": "",
        "status": "READY",
        "description": None,
        "created": number,
        "lifecycle": None,
        "aliases": [],
        "tags": {},
        "metrics": {"accuracy": accuracy},
        "params": {},
        "evidence": dict(EVIDENCE),
    }
    values.update(extra)
    return VersionState(**values)


def state(*versions: VersionState, **aliases: int) -> ModelState:
    for v in versions:
        v.aliases = sorted(a for a, n in aliases.items() if n == v.number)
    return ModelState("m", dict(aliases), {v.number: v for v in versions})


def never(*_: Any) -> dict[str, Any]:
    raise AssertionError("no comparison expected")


SIMPLE = parse_policy(
    "stages:\n  staging:\n    gates: ['accuracy >= 0.5']\n"
    "  production:\n    gates: ['accuracy >= 0.9']\n    require: [signature]\n"
)


def test_without_a_beat_rule_only_a_strictly_better_version_replaces() -> None:
    tie = plan_promotion(
        state(version(1, 0.92), version(2, 0.92), production=1), SIMPLE, compare=never
    )
    assert tie.aliases_after["production"] == 1
    better = plan_promotion(
        state(version(1, 0.92), version(2, 0.93), production=1), SIMPLE, compare=never
    )
    assert better.aliases_after == {"production": 2, "staging": 1}  # replaced, not archived
    decisions = {d.version: d for d in better.decisions}
    assert "replaced at @production by v2" in decisions[1].reason


def test_ties_between_candidates_go_to_the_newest_and_evidence_is_required() -> None:
    plan = plan_promotion(
        state(version(1, 0.95), version(2, 0.95), version(3, 0.99, evidence={"signature": False})),
        SIMPLE,
        compare=never,
    )
    assert plan.aliases_after == {"production": 2, "staging": 3}  # staging needs no signature
    decisions = {d.version: d for d in plan.decisions}
    assert "production: no signature evidence" in decisions[3].reason
    assert "passes the staging gates, but v3 ranks higher" in decisions[1].reason


def test_only_one_version_leaves_the_others_untagged() -> None:
    plan = plan_promotion(state(version(1, 0.6), version(2, 0.95)), SIMPLE, compare=never, only=1)
    decisions = {d.version: d for d in plan.decisions}
    assert decisions[1].changed and decisions[1].after == "staging"
    assert not decisions[2].changed and decisions[2].reason == "not considered in this run"


def test_a_failed_comparison_keeps_the_champion() -> None:
    policy = parse_policy(
        "stages:\n  production:\n    gates: ['accuracy >= 0.9']\n    beat: {alpha: 0.01}\n"
    )
    seen = []

    def compare(champion: VersionState, challenger: VersionState, rule: Any) -> dict[str, Any]:
        seen.append((champion.number, challenger.number, rule.alpha))
        return {"passed": False, "reason": "not significantly better"}

    plan = plan_promotion(
        state(version(1, 0.91), version(2, 0.97), production=1), policy, compare=compare
    )
    assert seen == [(1, 2, 0.01)]
    assert plan.aliases_after == {"production": 1}
    assert "stays out: not significantly better" in plan.decisions[1].reason
