"""Every dashboard page and its JSON twin, in process, on a store seeded by the SDK."""

from __future__ import annotations

import csv
import io
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from flowscope.analysis import best_run, run_row
from flowscope.config import Settings
from tests.web.conftest import XSS_NAME, experiment_id


def _rows(settings: Settings, task: str, where: str = "") -> list[dict[str, object]]:
    """The task's runs as plain MLflow lists them, as rows."""
    mlflow_client = MlflowClient(settings.tracking_uri)
    experiment = mlflow_client.get_experiment_by_name(task)
    return [run_row(r) for r in mlflow_client.search_runs([experiment.experiment_id], where)]


def test_pages_and_json_twins_share_one_dict(client) -> None:
    for path in ("/experiments", "/models"):
        html = client.get(path)
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        assert html.headers["link"] == f'<{path}.json>; rel="alternate"; type="application/json"'
        twin = client.get(f"{path}.json")
        assert twin.status_code == 200 and twin.json()["ok"] is True


def test_experiments_list_counts_runs_by_kind(client, seeded: Settings) -> None:
    data = client.get("/experiments.json").json()
    by_name = {e["name"]: e for e in data["experiments"]}
    assert {"iris", "breast-cancer", "wine-knn", "diabetes-quantile"} <= set(by_name)
    mlflow_client = MlflowClient(seeded.tracking_uri)
    iris = mlflow_client.get_experiment_by_name("iris")
    assert by_name["iris"]["runs"] == len(mlflow_client.search_runs([iris.experiment_id]))
    assert by_name["iris"]["main_metric"] == "accuracy"
    accuracies = [
        r.data.metrics["accuracy"] for r in mlflow_client.search_runs([iris.experiment_id])
    ]
    assert by_name["iris"]["best"]["value"] == max(accuracies)


def test_runs_page_tabs_summary_sort_and_paging(client, seeded: Settings) -> None:
    iris = experiment_id(client, "iris")
    data = client.get(f"/experiments/{iris}.json", params={"page_size": 2}).json()
    tabs = {tab["name"]: tab["count"] for tab in data["tabs"]}
    rows = _rows(seeded, "iris")
    assert tabs["training"] == len(rows)
    assert tabs["inference"] == 1  # the task's inference runs live in iris-inference
    assert tabs["all"] == len(rows) + 1
    accuracies = [row["metrics.accuracy"] for row in rows]
    assert data["summary"]["metric"]["mean"] == pytest.approx(pd.Series(accuracies).mean())
    assert data["summary"]["metric"]["best"] == max(accuracies)
    # sorted by accuracy, best first, two to a page
    first = [row["metrics.accuracy"] for row in data["runs"]]
    assert first == sorted(accuracies, reverse=True)[:2]
    second = client.get(f"/experiments/{iris}.json", params={"page_size": 2, "page": 2}).json()
    assert [row["metrics.accuracy"] for row in second["runs"]] == sorted(accuracies, reverse=True)[
        2:4
    ]
    inference = client.get(f"/experiments/{iris}.json", params={"tab": "inference"}).json()
    assert [row["run_name"] for row in inference["runs"]] == ["served"]


def test_filter_and_sort_by_param(client) -> None:
    wine = experiment_id(client, "wine-knn")
    data = client.get(
        f"/experiments/{wine}.json",
        params={
            "filter": "params.`model.weights` = 'distance'",
            "order": "params.`model.metric` ASC",
        },
    ).json()
    assert data["error"] is None
    assert data["total"] > 0
    assert all(row["params.model.weights"] == "distance" for row in data["runs"])
    metrics = [row["params.model.metric"] for row in data["runs"]]
    assert metrics == sorted(metrics)


def test_bad_filter_is_shown_inline_and_400_in_json(client) -> None:
    iris = experiment_id(client, "iris")
    response = client.get(f"/experiments/{iris}.json", params={"filter": "metrics.accuracy >>> 1"})
    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert response.json()["error"]
    page = client.get(f"/experiments/{iris}", params={"filter": "metrics.accuracy >>> 1"})
    assert page.status_code == 400
    assert 'id="filter-error"' in page.text
    bad_sort = client.get(
        f"/experiments/{iris}.json", params={"order": "metrics.accuracy SIDEWAYS"}
    )
    assert bad_sort.status_code == 400


def test_csv_export_is_safe_from_formula_injection(client, seeded: Settings) -> None:
    import flowscope

    with flowscope.start_run("csv-check", run_name='=HYPERLINK("x")', settings=seeded) as run:
        run.log_params(
            {
                "cmd": "+SUM(A1)",
                "dde": "-1+cmd|' /C calc'!A0",
                "at": "@SUM(1)",
                "tab": "\t=1+1",
                "lr": "-0.5",
                "max_depth": "-1",  # LightGBM's "no limit"
                "tol": "1e-3",
                "shift": "+3",
                "eps": "-1e-06",
            }
        )
        run.log_metrics({"loss": -1.5})
    exp = experiment_id(client, "csv-check")
    response = client.get(f"/experiments/{exp}/runs.csv")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    (row,) = list(csv.DictReader(io.StringIO(response.text)))
    # text a spreadsheet would run as a formula gets the quote
    assert row["run_name"] == '\'=HYPERLINK("x")'
    assert row["params.cmd"] == "'+SUM(A1)"
    assert row["params.dde"] == "'-1+cmd|' /C calc'!A0"
    assert row["params.at"] == "'@SUM(1)"
    assert row["params.tab"] == "'\t=1+1"
    # numbers stay numbers, signed or not, logged as params or metrics
    assert row["params.lr"] == "-0.5"
    assert row["params.max_depth"] == "-1"
    assert row["params.tol"] == "1e-3"
    assert row["params.shift"] == "+3"
    assert row["params.eps"] == "-1e-06"
    assert float(row["metrics.loss"]) == -1.5


def test_best_run_matches_ranking_every_run(client, seeded: Settings) -> None:
    cancer = experiment_id(client, "breast-cancer")
    where = "metrics.recall_1 >= 0.9"
    data = client.get(
        f"/experiments/{cancer}/best.json", params={"metric": "f1", "where": where}
    ).json()
    expected = best_run(_rows(seeded, "breast-cancer", where), "f1")
    assert data["winner"]["run_id"] == expected.winner["run_id"]
    assert data["direction"] == "max"
    assert where in data["statement"]
    assert data["significance"]["available"] is True  # both runs kept their predictions
    assert data["significance"]["n"] == 114
    by_loss = client.get(f"/experiments/{cancer}/best.json", params={"metric": "log_loss"}).json()
    assert by_loss["direction"] == "min"
    by_max = client.get(
        f"/experiments/{cancer}/best.json", params={"metric": "val_accuracy", "value": "max"}
    ).json()
    assert by_max["value_of_winner"] >= by_max["winner"]["metrics.val_accuracy"]


def test_best_with_an_impossible_constraint_says_so(client) -> None:
    cancer = experiment_id(client, "breast-cancer")
    response = client.get(
        f"/experiments/{cancer}/best.json", params={"where": "metrics.accuracy > 2"}
    )
    assert response.status_code == 400
    assert "no run" in response.json()["error"]


def test_run_detail_shows_evaluation_profile_and_artifacts(client, seeded: Settings) -> None:
    cancer = experiment_id(client, "breast-cancer")
    runs = client.get(f"/experiments/{cancer}.json").json()["runs"]
    xgb = next(row for row in runs if row["params.model_type"] == "xgboost")
    data = client.get(f"/runs/{xgb['run_id']}.json").json()
    assert data["run"]["run_name"] == "xgboost"
    assert len(data["histories"]["val_accuracy"]) == 100
    evaluation = data["evaluation"]
    assert sum(map(sum, evaluation["confusion_matrix"]["counts"])) == 114
    assert [row["label"] for row in evaluation["per_class"]] == [0, 1]
    assert evaluation["per_class"][1]["recall"] == data["metrics"]["recall_1"]
    assert {row["threshold"] for row in evaluation["thresholds"]["rows"]} == {0.5, 0.43, 0.35}
    assert data["profile"]["rows"] == 455
    paths = {a["path"] for a in data["artifacts"]}
    assert "evaluation/confusion_matrix.json" in paths
    page = client.get(f"/runs/{xgb['run_id']}")
    assert page.status_code == 200
    assert 'id="confusion-chart"' in page.text and 'id="roc-chart"' in page.text
    # the download's temporary copy is removed afterwards, and nothing beside it
    neighbour = Path(tempfile.mkdtemp(prefix="flowscope-neighbour-"))
    download = client.get(f"/runs/{xgb['run_id']}/artifacts/evaluation/confusion_matrix.json")
    assert download.status_code == 200
    assert download.json()["counts"] == evaluation["confusion_matrix"]["counts"]
    assert neighbour.is_dir()
    neighbour.rmdir()
    assert not list(Path(tempfile.gettempdir()).glob("flowscope-artifact-*"))


@pytest.mark.parametrize(
    "path",
    ["..%2F..%2Fmlflow.db", "%2e%2e/secret", "/etc/passwd", "evaluation/../../x", "a\\b"],
)
def test_artifact_paths_outside_the_run_are_refused(client, path: str) -> None:
    cancer = experiment_id(client, "breast-cancer")
    run_id = client.get(f"/experiments/{cancer}.json").json()["runs"][0]["run_id"]
    response = client.get(f"/runs/{run_id}/artifacts/{path}")
    assert response.status_code in (400, 404)
    assert "root:" not in response.text


def test_compare_marks_best_and_hides_identical_params(client) -> None:
    wine = experiment_id(client, "wine-knn")
    runs = client.get(f"/experiments/{wine}.json").json()["runs"][:3]
    ids = ",".join(row["run_id"] for row in runs)
    data = client.get("/compare.json", params={"runs": ids, "metric": "accuracy"}).json()
    assert [run["run_id"] for run in data["runs"]] == [row["run_id"] for row in runs]
    assert all(entry["differs"] for entry in data["params"])
    assert data["hidden_params"] > 0
    accuracy = next(entry for entry in data["metrics"] if entry["name"] == "accuracy")
    best = max(accuracy["values"])
    marked = accuracy["best"] if isinstance(accuracy["best"], list) else [accuracy["best"]]
    assert all(accuracy["values"][index] == best for index in marked)
    # the runs explained their predictions: importances side by side, over the same features
    importances = data["importances"]
    assert set(importances["runs"]) == set(data["labels"])
    assert {"alcohol", "proline"} <= set(importances["features"])
    page = client.get("/compare", params={"runs": ids})
    assert page.status_code == 200
    assert "data-figure" in page.text and 'data-name="importances"' in page.text
    too_few = client.get("/compare.json", params={"runs": runs[0]["run_id"]})
    assert too_few.status_code == 400


def test_models_pages(client, seeded: Settings) -> None:
    models = client.get("/models.json").json()["models"]
    names = {model["name"]: model for model in models}
    assert names["iris-classifier"]["versions"] == 2
    detail = client.get("/models/iris-classifier.json").json()
    assert [v["version"] for v in detail["versions"]] == [2, 1]
    assert "accuracy" in detail["metric_columns"]
    compared = client.get("/models/iris-classifier/compare.json", params={"versions": "1,2"})
    assert compared.status_code == 200
    assert client.get("/models/nope.json").status_code == 404
    assert (
        client.get("/models/iris-classifier/compare.json", params={"versions": "1,9"}).status_code
        == 404
    )


@pytest.mark.parametrize(
    "path",
    ["/experiments/999", "/experiments/999.json", "/runs/0123abc", "/models/missing", "/nope"],
)
def test_unknown_things_are_404_with_a_clear_message(client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    if path.endswith(".json"):
        body = response.json()
        assert body["ok"] is False and body["status"] == 404 and body["error"]
    else:
        assert "Not found" in response.text
    assert "Traceback" not in response.text


def test_hostile_names_are_shown_as_text(client) -> None:
    iris = experiment_id(client, "iris")
    page = client.get(f"/experiments/{iris}", params={"order": "attributes.start_time DESC"})
    assert XSS_NAME not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    run_id = next(
        row["run_id"]
        for row in client.get(f"/experiments/{iris}.json").json()["runs"]
        if row["run_name"] == XSS_NAME
    )
    detail = client.get(f"/runs/{run_id}")
    assert "<script>alert(2)</script>" not in detail.text
    assert "<b>bold</b>" not in detail.text


class _Assets(HTMLParser):
    """The scripts and stylesheets a page loads, and whether it carries a figure."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.stylesheets: list[str] = []
        self.figures = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.scripts.append(str(found["src"]))
        elif tag == "link" and found.get("rel") == "stylesheet":
            self.stylesheets.append(str(found["href"]))
        if "data-figure" in found:
            self.figures += 1


def test_pages_with_charts_load_plotly_and_htmx_from_flowscope_itself(client) -> None:
    """The machine may be offline: a page with figures loads every script from the
    dashboard itself, and each one answers."""
    iris = experiment_id(client, "iris")
    runs = client.get(f"/experiments/{iris}.json", params={"kind": "training"}).json()["runs"]
    first, second = runs[0]["run_id"], runs[1]["run_id"]
    for path in (f"/runs/{first}", f"/compare?runs={first},{second}"):
        page = client.get(path)
        assert page.status_code == 200, path
        assets = _Assets()
        assets.feed(page.text)
        assert assets.figures > 0, f"{path} draws no chart"
        assert {"/vendor/plotly.min.js", "/static/htmx.min.js"} <= set(assets.scripts), path
        for url in assets.scripts + assets.stylesheets:
            assert url.startswith("/") and not url.startswith("//"), f"{path} loads {url}"
            asset = client.get(url)
            assert asset.status_code == 200 and asset.content, url
        assert "cdn" not in page.text.lower()
