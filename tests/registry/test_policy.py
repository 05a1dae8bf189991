"""Policy files: the shipped example, gates at their boundaries, errors naming key and line."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from flowscope.errors import NotFoundError
from flowscope.registry.policy import Gate, PolicyError, load_policy, parse_policy
from tests.registry.helpers import HEART_POLICY


def test_heart_disease_policy_encodes_the_issue() -> None:
    policy = load_policy(HEART_POLICY)
    assert policy.digest == hashlib.sha256(HEART_POLICY.read_bytes()).hexdigest()
    assert policy.model == "heart-disease"
    staging, production = policy.stages.staging, policy.stages.production
    assert staging is not None and production is not None
    assert [str(g) for g in staging.gates] == ["accuracy >= 0.85", "accuracy <= 0.9"]
    assert [str(g) for g in production.gates] == [
        "accuracy >= 0.91",
        "precision_1 >= 0.93",
        "recall_1 >= 0.9",
        "f1_1 >= 0.92",
    ]
    assert production.beat is not None and production.beat.metric == "accuracy"
    assert [str(g) for g in policy.archive.floor] == ["accuracy >= 0.85"]
    assert set(policy.archive.replaced) == {"staging", "production"}


@pytest.mark.parametrize(
    ("op", "value", "passes"),
    [
        (">=", 0.91, True),
        (">", 0.91, False),
        ("<=", 0.91, True),
        ("<", 0.91, False),
        ("==", 0.91, True),
        (">=", 0.9099999999999999, True),  # float noise counts as equal
        (">", 0.9100001, True),
        (">=", 0.9099, False),
    ],
)
def test_gate_boundaries(op: str, value: float, passes: bool) -> None:
    assert Gate(metric="accuracy", op=op, value=0.91).passes(value) is passes


def test_gate_never_passes_a_missing_or_nan_value() -> None:
    gate = Gate.model_validate("accuracy <= 1")
    assert not gate.passes(None)
    assert not gate.passes(float("nan"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "stages:\n  production:\n    gates:\n      - accuracy => 0.9\n",
            "stages.production.gates[0] (line 4): 'accuracy => 0.9' is not 'METRIC OP NUMBER'",
        ),
        ("stages:\n  prod:\n    gates: []\n", "stages.prod (line 2): unknown key"),
        (
            "stages:\n  production:\n    gatez: []\n",
            "stages.production.gatez (line 3): unknown key",
        ),
        (
            "stages:\n  production:\n    beat:\n      metric: precision_1\n",
            "stages.production.beat.metric (line 4): no paired significance test for 'precision_1'",
        ),
        (
            "stages:\n  staging:\n    require: [signatures]\n",
            "stages.staging.require[0] (line 3): 'signatures' is not allowed",
        ),
        (
            "stages:\n  production:\n    beat: {alpha: 2}\n",
            "stages.production.beat.alpha (line 3): Input should be less than 1",
        ),
        ("archive:\n  replaced: [production]\n", "stages: required key is missing"),
        ("stages: {}\n", "define at least one stage"),
        ("stages: [\n", "not valid YAML at line 2"),
        ("", "is empty"),
        ("- accuracy >= 0.9\n", "must be a mapping"),
    ],
)
def test_bad_policies_name_the_key_and_line(text: str, expected: str) -> None:
    with pytest.raises(PolicyError, match=r"policy bad\.yaml") as caught:
        parse_policy(text, source="bad.yaml")
    assert expected in str(caught.value)


def test_missing_policy_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no policy file"):
        load_policy(tmp_path / "nope.yaml")


def test_policy_names_every_metric_with_where() -> None:
    policy = parse_policy(
        "stages:\n  staging:\n    gates: ['f1_1 >= 0.8']\n    beat: {metric: f1}\n"
        "archive:\n  floor: ['rmse <= 3']\n"
    )
    assert policy.metrics() == {
        "f1_1": "stages.staging.gates[0]",
        "f1": "stages.staging.beat.metric",
        "rmse": "archive.floor[0]",
    }
