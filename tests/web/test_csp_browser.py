"""Every kind of dashboard page, and MLflow's UI on ``flowscope server``, works in real
Chromium under the Content-Security-Policy: no violation is reported, nothing is logged
as an error, and every chart is drawn (parallel coordinates in WebGL without
``'unsafe-eval'``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from flowscope.config import Settings
from tests.servers import TrackingServer, dashboard_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Installed before any script of a page runs: every report the browser makes lands here.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) =>
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}`));
"""
# MLflow's UI asks who is signed in; without --auth the server has no such route (plain
# `mlflow server` answers the same 404), and Chromium logs the 404 as an error.
EXPECTED_404S = {"/ajax-api/2.0/mlflow/users/current"}
# Every [data-figure] is a drawn Plotly figure with at least one trace.
CHARTS_DRAWN = """() => {
  const figures = [...document.querySelectorAll('[data-figure]')];
  return figures.every(
    (el) => el.classList.contains('js-plotly-plot') && el.data && el.data.length);
}"""


@pytest.fixture(scope="module")
def dashboard(seeded: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = dashboard_server(tmp_path_factory.mktemp("csp-dashboard"), seeded.tracking_uri)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def watched(browser: Any) -> Iterator[Any]:
    """A fresh browser page recording CSP violations, console errors and uncaught errors."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    page.problems = []

    def console(message: Any) -> None:
        where = message.location.get("url", "")
        if message.type == "error" and urlsplit(where).path not in EXPECTED_404S:
            page.problems.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    try:
        yield page
    finally:
        context.close()


def _visit(page: Any, url: str) -> int:
    """Load ``url``, wait for its charts, and return how many it drew; fail on any
    violation or error it caused."""
    answer = page.goto(url)
    assert answer is not None and answer.status == 200, url
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    page.wait_for_load_state("networkidle")
    page.wait_for_function(CHARTS_DRAWN, timeout=30_000)
    violations = page.evaluate("window.__violations")
    assert violations == [], (url, violations)
    assert page.problems == [], (url, page.problems)
    return int(page.locator("[data-figure]").count())


def _dashboard_urls(base: str) -> dict[str, str]:
    """One address of each kind of page, found through the dashboard's JSON twins."""
    with httpx.Client(base_url=base, timeout=60) as web:
        experiments = web.get("/experiments.json").json()["experiments"]
        by_name = {e["name"]: e["experiment_id"] for e in experiments}
        wine = by_name["wine-knn"]
        runs = web.get(f"/experiments/{wine}.json").json()["runs"]
        run_ids = [run["run_id"] for run in runs][:4]
        studies = web.get(f"/experiments/{by_name['breast-cancer']}.json?tab=tuning").json()
    return {
        "experiments": "/experiments",
        "runs": f"/experiments/{wine}",
        "run": f"/runs/{run_ids[0]}",
        "compare": f"/compare?runs={','.join(run_ids)}",
        "models": "/models",
        "model": "/models/iris-classifier",
        "predict": "/models/iris-classifier/predict",
        "study": f"/studies/{studies['runs'][0]['run_id']}",
        "report": f"/experiments/{wine}/report",
        "workbench": "/workbench",
        "jobs": "/jobs",
        "error": "/experiments/no-such-experiment",
    }


def test_every_dashboard_page_draws_its_charts_under_the_policy(
    watched: Any, dashboard: str
) -> None:
    urls = _dashboard_urls(dashboard)
    drawn: dict[str, int] = {}
    for kind, path in urls.items():
        if kind == "error":  # the friendly 404 page: the same policy, no violation
            answer = watched.goto(dashboard + path)
            assert answer is not None and answer.status == 404
            assert watched.evaluate("window.__violations") == []
            watched.problems.clear()  # Chromium logs the 404 itself as an error
            continue
        drawn[kind] = _visit(watched, dashboard + path)
        if kind == "compare":
            parallel = watched.locator("[data-name=parallel] .parcoords")
            assert parallel.count() == 1
            assert watched.locator("[data-name=parallel] canvas").count() > 0
    for kind in ("run", "compare", "study", "report"):
        assert drawn[kind] > 0, (kind, drawn)


def test_mlflow_ui_and_the_dashboard_on_a_server_run_under_the_policy(
    watched: Any, tmp_path: Path
) -> None:
    server = TrackingServer(tmp_path / "server", f"sqlite:///{tmp_path / 'mlflow.db'}")
    server.start()
    try:
        answer = watched.goto(server.url + "/")
        assert answer is not None and answer.status == 200
        assert (
            "'unsafe-inline'"
            not in answer.headers["content-security-policy"].split("script-src")[1].split(";")[0]
        )
        # MLflow's React app drew its experiment list from its API (it polls, so the
        # network never goes quiet): the Default experiment's link is there
        watched.get_by_role("link", name="Default").first.wait_for(timeout=30_000)
        assert watched.evaluate("window.__violations") == []
        assert watched.problems == [], watched.problems
        _visit(watched, server.url + "/flowscope/experiments")
    finally:
        server.stop()
