"""Fairness by group: the numbers are fairlearn's, logged as metrics and a table, from the SDK
and from training with a sensitive column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.metrics import accuracy_score, precision_score, recall_score

import flowscope
from flowscope.config import Settings
from flowscope.errors import FlowscopeError
from flowscope.explain import fairness_report
from flowscope.explain.fairness import FAIRNESS_ARTIFACT
from flowscope.modeling.train import train
from tests.conftest import make_settings

metrics = pytest.importorskip("fairlearn.metrics")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("fairness-store")
    return make_settings(root, f"sqlite:///{root / 'mlflow.db'}")


def _predictions(labels: tuple[str, ...]) -> tuple[pd.Series, np.ndarray, pd.Series]:
    rng = np.random.default_rng(4)
    rows = 300
    group = pd.Series(rng.choice(["f", "m", "x"], rows, p=[0.45, 0.45, 0.1]), name="sex")
    truth = pd.Series(rng.choice(labels, rows))
    # predictions that are right more often for one group
    right = rng.random(rows) < np.where(group == "f", 0.9, 0.7)
    predicted = np.where(right, truth, rng.choice(labels, rows))
    return truth, predicted, group


def test_binary_numbers_equal_fairlearns() -> None:
    truth, predicted, group = _predictions(("no", "yes"))
    report = fairness_report(truth, predicted, group)

    true01, pred01 = (truth == "yes").astype(int), (predicted == "yes").astype(int)
    assert report.positive_label == "yes"
    assert report.metrics["fairness_demographic_parity_difference"] == pytest.approx(
        metrics.demographic_parity_difference(true01, pred01, sensitive_features=group)
    )
    assert report.metrics["fairness_equalized_odds_difference"] == pytest.approx(
        metrics.equalized_odds_difference(true01, pred01, sensitive_features=group)
    )
    assert report.metrics["fairness_demographic_parity_ratio"] == pytest.approx(
        metrics.demographic_parity_ratio(true01, pred01, sensitive_features=group)
    )
    by_group = {row["sex"]: row for row in report.by_group}
    assert set(by_group) == {"f", "m", "x"}
    for name, row in by_group.items():
        chosen = (group == name).to_numpy()
        assert row["count"] == chosen.sum()
        assert row["accuracy"] == pytest.approx(accuracy_score(truth[chosen], predicted[chosen]))
        assert row["precision"] == pytest.approx(
            precision_score(truth[chosen], predicted[chosen], pos_label="yes")
        )
        assert row["recall"] == pytest.approx(
            recall_score(truth[chosen], predicted[chosen], pos_label="yes")
        )
        assert row["selection_rate"] == pytest.approx((predicted[chosen] == "yes").mean())


def test_multiclass_takes_the_worst_class_against_the_rest() -> None:
    truth, predicted, group = _predictions(("a", "b", "c"))
    report = fairness_report(truth, predicted, group)

    worst = max(
        metrics.demographic_parity_difference(
            (truth == label).astype(int), (predicted == label).astype(int), sensitive_features=group
        )
        for label in ("a", "b", "c")
    )
    assert report.metrics["fairness_demographic_parity_difference"] == pytest.approx(worst)
    assert set(report.per_class) == {"a", "b", "c"}
    macro = {row["sex"]: row["precision"] for row in report.by_group}
    chosen = (group == "m").to_numpy()
    assert macro["m"] == pytest.approx(
        precision_score(truth[chosen], predicted[chosen], average="macro")
    )


def test_run_logs_metrics_and_table(store: Settings, tmp_path: Path) -> None:
    truth, predicted, group = _predictions(("no", "yes"))
    with flowscope.start_run("fair", settings=store) as run:
        report = run.log_fairness(truth, predicted, group)
    client = MlflowClient(store.tracking_uri)
    logged = client.get_run(run.run_id).data.metrics

    for key, value in report.metrics.items():
        assert logged[key] == pytest.approx(value)
    table = json.loads(
        Path(client.download_artifacts(run.run_id, FAIRNESS_ARTIFACT, str(tmp_path))).read_text()
    )
    assert table["sensitive_feature"] == "sex" and len(table["by_group"]) == 3


def test_training_with_a_sensitive_column(store: Settings) -> None:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(
        {
            "income": rng.normal(size=240),
            "group": rng.choice(["a", "b"], 240),
            "age": rng.integers(18, 80, 240),
        }
    )
    frame["approved"] = np.where(frame["income"] + (frame["group"] == "a") * 0.5 > 0.2, "y", "n")
    result = train(
        frame,
        "approved",
        "logistic_regression",
        task="loans",
        sensitive="group",
        explain=False,
        settings=store,
    )
    logged = MlflowClient(store.tracking_uri).get_run(result.run_id).data.metrics
    assert "fairness_demographic_parity_difference" in logged
    assert "fairness_equalized_odds_difference" in logged


@pytest.mark.parametrize(
    ("sensitive", "target", "message"),
    [("nope", "approved", "no column 'nope'"), ("approved", "approved", "is the target")],
)
def test_a_bad_sensitive_column_is_refused_before_the_run(
    store: Settings, sensitive: str, target: str, message: str
) -> None:
    frame = pd.DataFrame({"x": np.arange(20.0), "approved": ["y", "n"] * 10})
    with pytest.raises(FlowscopeError, match=message):
        train(
            frame,
            target,
            "logistic_regression",
            task="refused",
            sensitive=sensitive,
            settings=store,
        )
    assert MlflowClient(store.tracking_uri).get_experiment_by_name("refused") is None
