"""A demo store seeded once for the dashboard tests, an in-process client on it, and real
Chromium (Debian's, driven by Playwright) for the browser tests."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import flowscope
from flowscope.config import Settings
from tests.conftest import make_settings
from tests.reports.knn_grid import train_knn_grid
from tests.web.churn import Churn, train_churn

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

XSS_NAME = "<img src=x onerror=alert(1)>"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"
# Chromium's own background traffic is refused on a closed network; these keep it quiet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The quick demo (every scenario, real models) plus runs with hostile names and a
    plain inference run, in one SQLite store shared by the dashboard tests."""
    from flowscope.demo import seed_demo

    root = tmp_path_factory.mktemp("dashboard")
    settings = make_settings(root, f"sqlite:///{root / 'mlflow.db'}")
    seed_demo(settings, quick=True)
    with flowscope.start_run("iris", run_name=XSS_NAME, settings=settings) as run:
        run.log_params({"note": "<script>alert(2)</script>"})
        run.log_metrics({"accuracy": 0.1})
        run.set_tags({"owner": "<b>bold</b>"})
    with flowscope.start_run("iris", run_name="served", kind="inference", settings=settings) as run:
        run.log_metrics({"samples": 42})
    return settings


@pytest.fixture
def client(seeded: Settings, tmp_path: Path) -> Iterator[TestClient]:
    from flowscope.web import create_app

    with TestClient(create_app(seeded), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def knn_grid(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The comparison report's KNN grid (``tests/reports/knn_grid.py``), trained once for
    the report page's tests."""
    return train_knn_grid(tmp_path_factory.mktemp("knn-grid"))


def experiment_id(client: TestClient, name: str) -> str:
    data = client.get("/experiments.json").json()
    return next(e["experiment_id"] for e in data["experiments"] if e["name"] == name)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing (make test installs Debian's chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, dashboard: str) -> Iterator[Any]:
    """A page of the test module's ``dashboard`` that records what went wrong in it:
    console errors and uncaught exceptions in ``problems``, and the dialogs it opened
    (dismissed) in ``dialogs``."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=dashboard)
    opened = context.new_page()
    problems: list[str] = []
    dialogs: list[str] = []
    opened.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    opened.problems = problems
    opened.dialogs = dialogs
    try:
        yield opened
    finally:
        context.close()


def screenshot(page: object, name: str) -> None:
    """A full-page screenshot under test-output/, for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def churn(tmp_path_factory: pytest.TempPathFactory) -> Churn:
    """``tests/web/churn.py``'s classifier, registered once as ``churn`` (``@champion``)."""
    return train_churn(tmp_path_factory.mktemp("churn"))
