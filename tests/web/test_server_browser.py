"""The dashboard in Chromium as ``flowscope server`` serves it under ``/flowscope/``:
its links, forms, scripts and charts work under the prefix, and a run page leads to the
same run in MLflow's UI at the server's root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from tests.servers import TrackingServer

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("tracking-server")
    server = TrackingServer(root, f"sqlite:///{root / 'mlflow.db'}")
    server.start()
    client = MlflowClient(server.url)
    experiment_id = client.create_experiment("served")
    for index, depth in enumerate((2, 4, 8)):
        run_id = client.create_run(experiment_id, run_name=f"tree-{depth}").info.run_id
        client.log_param(run_id, "depth", str(depth))
        for step in range(4):
            client.log_metric(run_id, "accuracy", 0.6 + index / 10 + step / 100, step=step)
        client.set_terminated(run_id)
    try:
        yield server.url
    finally:
        server.stop()


def test_dashboard_under_the_prefix_and_into_mlflows_ui(page: Any, tmp_path: Path) -> None:
    page.goto("/flowscope/")
    assert page.url.endswith("/flowscope/experiments")
    page.get_by_role("link", name="served", exact=True).click()
    page.wait_for_selector("table#runs tbody tr")
    assert "/flowscope/experiments/" in page.url
    assert page.locator("table#runs tbody tr").count() == 3

    page.get_by_label("filter").fill("params.depth = '4'")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()
    assert "/flowscope/experiments/" in page.url
    assert page.locator("table#runs tbody tr").count() == 1
    page.get_by_label("filter").fill("")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()

    boxes = page.locator("input.select-run")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.locator("#compare-button").click()
    page.wait_for_selector("#param-diff")
    assert "/flowscope/compare" in page.url
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0")

    page.go_back()
    page.locator("table#runs a.run-name", has_text="tree-8").click()
    page.wait_for_selector("#history")
    assert "/flowscope/runs/" in page.url
    run_id = page.url.rsplit("/", 1)[1]
    assert page.problems == []  # no script or asset of the dashboard failed under the prefix
    page.get_by_role("link", name="open in MLflow").click()
    page.wait_for_url(f"**/#/experiments/*/runs/{run_id}*")
    page.wait_for_function("document.title.includes('MLflow') || document.title.includes('tree-8')")
    assert "/flowscope" not in page.url
