"""The JSON answers alone (/api/experiments/ID/runs, /summary, /best) equal MLflow's own
for the same question on the seeded demo store, and bad input is a 4xx naming it."""

from __future__ import annotations

import math

import mlflow
import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from tests.web.conftest import TestClient, experiment_id


@pytest.fixture
def iris(client: TestClient) -> str:
    return experiment_id(client, "iris")


def test_a_page_of_runs_is_mlflows_page(client: TestClient, seeded: Settings, iris: str) -> None:
    order = "metrics.accuracy DESC"
    where = "metrics.accuracy >= 0"
    answer = client.get(
        f"/api/experiments/{iris}/runs",
        params={"order": order, "filter": where, "page_size": 2, "page": 2},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    expected = MlflowClient(seeded.tracking_uri).search_runs(
        [iris], filter_string=where, order_by=[order], max_results=1000
    )
    assert body["total"] == len(expected) > 2
    assert [row["run_id"] for row in body["rows"]] == [run.info.run_id for run in expected[2:4]]
    assert body["order_by"] == [order]


def test_the_summary_is_pandas_on_mlflows_runs(
    client: TestClient, seeded: Settings, iris: str
) -> None:
    answer = client.get(f"/api/experiments/{iris}/summary", params={"metric": "accuracy"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    mlflow.set_tracking_uri(seeded.tracking_uri)
    try:
        frame = mlflow.search_runs([iris], max_results=10_000)
    finally:
        mlflow.set_tracking_uri(None)
    values = frame["metrics.accuracy"].dropna()
    assert body["total"] == len(frame)
    assert sum(body["by_kind"].values()) == len(frame)
    stats = body["metric"]
    assert stats["count"] == len(values)
    assert math.isclose(stats["mean"], values.mean())
    assert (stats["min"], stats["max"]) == (values.min(), values.max())


def test_the_best_run_is_mlflows_first(client: TestClient, seeded: Settings, iris: str) -> None:
    where = "metrics.accuracy > 0.5"
    answer = client.get(
        f"/api/experiments/{iris}/best",
        params={"metric": "accuracy", "direction": "max", "filter": where},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    [first] = MlflowClient(seeded.tracking_uri).search_runs(
        [iris],
        filter_string=where,
        order_by=["metrics.accuracy DESC", "attributes.start_time ASC"],
        max_results=1,
    )
    assert body["winner"]["run_id"] == first.info.run_id
    assert body["value"] == first.data.metrics["accuracy"]


def test_the_best_run_counts_what_mlflow_finds_unless_asked_not_to(
    client: TestClient, seeded: Settings, iris: str
) -> None:
    where = "metrics.accuracy > 0.5"
    matching = MlflowClient(seeded.tracking_uri).search_runs(
        [iris], filter_string=where, max_results=1000
    )
    training = [
        run for run in matching if run.data.tags.get("flowscope.kind", "training") == "training"
    ]
    params = {"metric": "accuracy", "direction": "max", "filter": where, "kind": "training"}
    counted = client.get(f"/api/experiments/{iris}/best", params=params).json()
    assert counted["considered"] == len(training) > 1
    assert counted["without_metric"] == 0
    uncounted = client.get(f"/api/experiments/{iris}/best", params={**params, "counts": "false"})
    assert uncounted.status_code == 200, uncounted.text
    body = uncounted.json()
    assert (body["considered"], body["without_metric"]) == (None, None)
    assert body["winner"] == counted["winner"]
    assert body["runners_up"] == counted["runners_up"]
    assert body["tie_break"] == counted["tie_break"]


@pytest.mark.parametrize(
    ("path", "params", "status", "named"),
    [
        ("runs", {"filter": "metrics.accuracy >>> 1"}, 400, "filter"),
        ("runs", {"order": "nonsense DESC DESC"}, 400, "order"),
        ("runs", {"kind": "nope"}, 400, "nope"),
        ("runs", {"page_size": "0"}, 400, "page_size"),
        ("summary", {"filter": "tags.x = "}, 400, "filter"),
        ("best", {"metric": ""}, 400, "metric"),
        ("best", {}, 400, "metric"),
    ],
)
def test_bad_input_is_a_400_naming_it(
    client: TestClient, iris: str, path: str, params: dict[str, str], status: int, named: str
) -> None:
    answer = client.get(f"/api/experiments/{iris}/{path}", params=params)
    assert answer.status_code == status, answer.text
    assert named in answer.text.lower()


def test_an_unknown_experiment_is_a_404(client: TestClient) -> None:
    for path in ("runs", "summary", "best?metric=accuracy"):
        answer = client.get(f"/api/experiments/987654/{path}")
        assert answer.status_code == 404, (path, answer.text)
