"""The comparison report page in real Chromium, served by a real ``flowscope ui`` process
on the report tests' KNN grid: reached from the experiment page, every chart drawn, run
names shown as written, the downloads downloaded, and a bad query shown on the page."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from tests.reports.knn_grid import SCRIPT, TASK
from tests.servers import dashboard_server
from tests.web.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHARTS = {"confusion", "metric", "params", "parallel", "importances"}


@pytest.fixture(scope="module")
def dashboard(knn_grid: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = dashboard_server(tmp_path_factory.mktemp("report-server"), knn_grid.tracking_uri)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="module")
def grid_id(knn_grid: Settings) -> str:
    experiment = MlflowClient(knn_grid.tracking_uri).get_experiment_by_name(TASK)
    assert experiment is not None
    return str(experiment.experiment_id)


def _charts(page: Any) -> dict[str, dict[str, Any]]:
    """Wait until Plotly drew every figure of the page; then what each one shows."""
    page.wait_for_function(
        "() => { const all = document.querySelectorAll('[data-figure]');"
        " return all.length > 0 && [...all].every((el) => el.classList.contains('js-plotly-plot')"
        " && el._fullData && el._fullData.length > 0 && el.querySelector('.main-svg')); }"
    )
    facts: dict[str, dict[str, Any]] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('[data-figure]')]
          .map((el) => [el.dataset.name, {
            traces: el._fullData.length,
            types: el._fullData.map((t) => t.type),
            bars: el.querySelectorAll('.barlayer .point').length,
            points: el.querySelectorAll('.scatterlayer .point').length,
            boxes: el.querySelectorAll('.boxlayer .trace path.box').length,
            parallelAxes: el.querySelectorAll('.parcoords .y-axis').length,
            ticks: [...el.querySelectorAll('.ytick text')].map((t) => t.textContent),
          }]))"""
    )
    return facts


def test_report_page_draws_every_chart_and_downloads_its_files(
    page: Any, dashboard: str, grid_id: str, tmp_path: Path
) -> None:
    # from the experiment page, as a person gets there, then ranked by log_loss
    page.goto(f"/experiments/{grid_id}")
    page.locator("#report-link").click()
    page.wait_for_selector("#report-title")
    page.get_by_label("metric").fill("log_loss")
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url("**/report?metric=log_loss**")
    facts = _charts(page)
    assert set(facts) == CHARTS
    assert facts["metric"]["bars"] == 12
    assert SCRIPT in facts["metric"]["ticks"]  # the run's name, as written
    assert facts["params"]["boxes"] > 0 and facts["params"]["points"] >= 3 * 12
    assert facts["parallel"]["types"] == ["parcoords"]
    assert facts["parallel"]["parallelAxes"] == 4  # three parameters and log_loss
    assert facts["importances"]["bars"] == 3
    assert facts["confusion"]["types"] == ["heatmap"]

    names = page.locator("#report-runs a.run-name").all_inner_texts()
    assert len(names) == 12 and names[0] == "knn-25-distance-euclidean"
    assert SCRIPT in names
    assert page.locator("#best-run h2").inner_text().startswith("Best run: knn-25-distance")
    screenshot(page, "report")

    for button, suffix in (
        ("#download-html", "html"),
        ("#download-csv", "csv"),
        ("#download-markdown", "zip"),
    ):
        with page.expect_download() as started:
            page.locator(button).click()
        download = started.value
        assert download.suggested_filename == f"comparison-{grid_id}.{suffix}"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        href = page.locator(button).get_attribute("href")
        with urllib.request.urlopen(f"{dashboard}{href}", timeout=60) as answer:
            assert saved.read_bytes() == answer.read()
    assert saved.read_bytes().startswith(b"PK")
    assert (tmp_path / f"comparison-{grid_id}.html").read_text().startswith("<!doctype html>")
    assert page.dialogs == []
    assert page.problems == []


def test_a_bad_query_is_shown_on_the_page(page: Any, grid_id: str) -> None:
    page.goto(f"/experiments/{grid_id}/report")
    _charts(page)
    page.get_by_label("where").fill("metrics.f1 >>> 2")
    with page.expect_navigation() as navigated:
        page.get_by_role("button", name="Compare").click()
    assert navigated.value.status == 400
    assert "bad filter" in page.locator("#report-error").inner_text()
    assert page.get_by_label("where").input_value() == "metrics.f1 >>> 2"
    assert page.locator("#report-runs").count() == 0

    page.get_by_label("where").fill("")
    page.get_by_label("metric").fill("nope")
    with page.expect_navigation() as navigated:
        page.get_by_role("button", name="Compare").click()
    assert navigated.value.status == 400
    assert "has the metric 'nope'" in page.locator("#report-error").inner_text()
    # the only complaint is the browser's note of the 400 answers themselves
    assert all("status of 400" in problem for problem in page.problems)
    assert page.dialogs == []
