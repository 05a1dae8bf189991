"""The comparison report page, ``/experiments/ID/report``, in process on the report tests'
KNN grid: its JSON twin is the report's data, its charts are drawn from the table's rows,
bad input is a 404 or a 400 that names the problem, the downloads are the report's files
(the HTML the same bytes as ``flowscope report compare`` prints), and a run named like a
script is text."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import markupsafe
import numpy as np
import pytest

from flowscope.analysis.query import reading_runs
from flowscope.config import Settings
from flowscope.reports import CompareQuery, compare_experiment, render_comparison
from tests.reports.knn_grid import SCRIPT, TASK, compare_command
from tests.web.conftest import TestClient, experiment_id

BEST = "knn-25-distance-euclidean"  # by log_loss
CHART_IMAGES = ("metric", "params", "parallel")


@pytest.fixture(scope="module")
def client(knn_grid: Settings) -> Iterator[TestClient]:
    from flowscope.web import create_app

    with TestClient(create_app(knn_grid), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def grid_id(client: TestClient) -> str:
    return experiment_id(client, TASK)


def report_data(settings: Settings, experiment: str, **query: Any) -> dict[str, Any]:
    """What :func:`compare_experiment` says, as JSON reads it back."""
    with reading_runs(settings) as store:
        data = compare_experiment(settings, store, experiment, CompareQuery(**query))
    return dict(json.loads(json.dumps(data)))


def figures(page: str) -> dict[str, Any]:
    """The Plotly figures a page carries, by name."""
    found = re.findall(r'data-name="([^"]+)" data-figure="([^"]*)"', page)
    return {name: json.loads(html.unescape(figure)) for name, figure in found}


def escaped(text: str) -> str:
    """``text`` as the page's templates write it."""
    return str(markupsafe.escape(text))


def numbers(values: Any) -> list[float]:
    """A figure's array as numbers: Plotly writes a NumPy array as base64 (``bdata``)."""
    if isinstance(values, dict):
        raw = base64.b64decode(values["bdata"])
        return [float(value) for value in np.frombuffer(raw, dtype=values["dtype"])]
    return [float(value) for value in values]


def test_json_twin_is_the_reports_data(
    client: TestClient, knn_grid: Settings, grid_id: str
) -> None:
    answer = client.get(f"/experiments/{grid_id}/report.json", params={"metric": "log_loss"})
    assert answer.status_code == 200
    body = answer.json()
    assert body.pop("ok") is True
    assert body == report_data(knn_grid, grid_id, metric="log_loss")
    assert body["best"]["run_name"] == BEST
    shown = client.get(f"/experiments/{grid_id}/report", params={"metric": "log_loss"})
    twin = f"/experiments/{grid_id}/report.json?metric=log_loss"
    assert shown.headers["link"] == f'<{twin}>; rel="alternate"; type="application/json"'
    assert f'href="{twin}"' in shown.text


def test_page_shows_every_section_and_charts_the_tables_rows(
    client: TestClient, knn_grid: Settings, grid_id: str
) -> None:
    data = report_data(knn_grid, grid_id, metric="log_loss")
    answer = client.get(f"/experiments/{grid_id}/report", params={"metric": "log_loss"})
    assert answer.status_code == 200
    page = answer.text
    best = data["best"]
    assert f'class="run-name">{BEST}</a>' in page
    assert escaped(best["summary"]) in page
    # per class and the confusion matrix, as the run logged them
    per_class = page[page.index('id="per-class"') : page.index('id="confusion"')]
    for row in best["per_class"]:
        assert f"{row['f1']:.4g}" in per_class
    confusion = page[page.index('id="confusion"') : page.index('id="binary-counts"')]
    assert re.findall(r'<td class="num">(\d+)</td>', confusion) == [
        str(count) for counts in best["confusion"]["counts"] for count in counts
    ]
    # every run, best first
    table = page[page.index('id="report-runs"') : page.index('id="report-charts"')]
    ranked = [row["run_id"] for row in data["table"]["rows"]]
    assert re.findall(r'<tr data-run-id="([^"]+)"', table) == ranked
    # the charts, drawn from the table's rows
    drawn = figures(page)
    assert set(drawn) == {"confusion", "metric", "params", "parallel", "importances"}
    scores = [row["score"] for row in data["table"]["rows"]]
    [bars] = drawn["metric"]["data"]
    assert bars["type"] == "bar" and numbers(bars["x"]) == scores
    assert drawn["metric"]["data"][0]["marker"]["color"][0] != bars["marker"]["color"][1]
    parallel = drawn["parallel"]["data"][0]["dimensions"]
    assert [d["label"] for d in parallel] == [
        *(axis["name"] for axis in data["charts"]["parallel"]["axes"]),
        "log_loss",
    ]
    assert numbers(parallel[-1]["values"]) == scores
    panels = [trace for trace in drawn["params"]["data"] if trace["type"] == "box"]
    assert len(panels) == len(data["charts"]["params"]) == 3
    importances = drawn["importances"]["data"][0]
    assert dict(zip(importances["y"], numbers(importances["x"]), strict=True)) == pytest.approx(
        data["insights"]["importances"]
    )
    # insights and the command that promotes the registered winner
    for sentence in data["insights"]["sentences"]:
        assert escaped(sentence) in page
    [step] = data["next_steps"]
    assert f"<pre><code>{escaped(step['command'])}</code></pre>" in page
    for download in ("html", "csv", "zip"):
        assert f'href="/experiments/{grid_id}/report.{download}?metric=log_loss&amp;' in page


def test_the_experiment_page_links_to_its_report(client: TestClient, grid_id: str) -> None:
    weights = "params.`model.weights` = 'distance'"
    runs = client.get(
        f"/experiments/{grid_id}", params={"tab": "training", "filter": weights, "metric": "f1"}
    )
    [link] = re.findall(r'id="report-link" href="([^"]+)"', runs.text)
    answer = client.get(html.unescape(link).replace("/report?", "/report.json?"))
    assert answer.status_code == 200
    data = answer.json()
    assert data["query"]["where"] == weights and data["metric"]["name"] == "f1"
    assert data["counts"]["runs"] == 6


@pytest.mark.parametrize(
    ("path", "params", "status", "message"),
    [
        ("/experiments/987654/report", {}, 404, "no active experiment with id '987654'"),
        ("report", {"metric": "nope"}, 400, "has the metric 'nope'"),
        ("report", {"where": "metrics.f1 >>> 2"}, 400, "bad filter"),
        ("report", {"where": "metrics.f1 > 2"}, 400, "no training runs of 'cancer-knn' match"),
        ("report", {"kind": "inference"}, 400, "kind must be one of training, trial"),
        ("report", {"value": "median"}, 400, "value must be one of"),
        ("report", {"direction": "up"}, 400, "direction must be max or min"),
        ("report.csv", {"metric": "nope"}, 400, "has the metric 'nope'"),
        ("report.pdf", {}, 404, "no report file report.pdf"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_problem(
    client: TestClient, grid_id: str, path: str, params: dict[str, str], status: int, message: str
) -> None:
    url = path if path.startswith("/") else f"/experiments/{grid_id}/{path}"
    shown = client.get(url, params=params)
    assert shown.status_code == status
    assert shown.headers["content-type"].startswith("text/html")
    assert escaped(message) in shown.text
    assert "Traceback" not in shown.text
    if path == "report":  # the page keeps the form with what was asked, to mend it
        error = re.search(
            r'<p class="error" role="alert" id="report-error">([^<]*)</p>', shown.text
        )
        assert error is not None and escaped(message) in error.group(1)
        for name, value in params.items():
            if name in ("metric", "where"):  # the form's text fields (the rest are choices)
                assert f'name="{name}" value="{escaped(value)}"' in shown.text
    if not path.startswith("report."):
        twin = url.replace("/report", "/report.json")
        answer = client.get(twin, params=params)
        assert answer.status_code == status
        body = answer.json()
        assert body["ok"] is False and body["status"] == status and message in body["error"]


def test_downloads_are_the_reports_files(
    client: TestClient, knn_grid: Settings, grid_id: str
) -> None:
    query = {"metric": "log_loss"}
    answer = client.get(f"/experiments/{grid_id}/report.html", params=query)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    disposition = f'attachment; filename="comparison-{grid_id}.html"'
    assert answer.headers["content-disposition"] == disposition
    printed = compare_command(knn_grid, TASK, "--metric", "log_loss", "-f", "html")
    assert printed.returncode == 0, printed.stderr
    assert answer.content == printed.stdout.encode()

    data = report_data(knn_grid, grid_id, **query)
    runs = client.get(f"/experiments/{grid_id}/report.csv", params=query)
    assert runs.headers["content-disposition"] == f'attachment; filename="comparison-{grid_id}.csv"'
    assert runs.text == render_comparison(data, "csv")
    parsed = list(csv.DictReader(io.StringIO(runs.text)))
    assert [row["run_id"] for row in parsed] == [row["run_id"] for row in data["table"]["rows"]]

    packed = client.get(f"/experiments/{grid_id}/report.zip", params=query)
    assert packed.headers["content-type"] == "application/zip"
    stem = f"comparison-{grid_id}"
    with zipfile.ZipFile(io.BytesIO(packed.content)) as archive:
        assert sorted(archive.namelist()) == sorted(
            [f"{stem}.md", f"{stem}-runs.csv", *(f"{stem}-{n}.png" for n in CHART_IMAGES)]
        )
        markdown = archive.read(f"{stem}.md").decode()
        assert archive.read(f"{stem}-runs.csv").decode() == runs.text
    assert markdown == render_comparison(
        data,
        "markdown",
        images={n: f"{stem}-{n}.png" for n in CHART_IMAGES},
        csv_name=f"{stem}-runs.csv",
    )
    again = client.get(f"/experiments/{grid_id}/report.zip", params=query)
    assert again.content == packed.content


def test_a_run_named_like_a_script_is_text(client: TestClient, grid_id: str) -> None:
    page = client.get(f"/experiments/{grid_id}/report", params={"metric": "log_loss"}).text
    assert SCRIPT not in page
    assert f'class="run-name">{escaped(SCRIPT)}</a>' in page
    # in the figures too: Plotly shows entities as characters, so the name reads as written
    drawn = figures(page)
    assert html.escape(SCRIPT, quote=False) in drawn["metric"]["layout"]["yaxis"]["ticktext"]
    assert SCRIPT not in json.dumps([figure for figure in drawn.values()])
