"""The dashboard in real Chromium (Debian's, driven by Playwright): what a person clicks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flowscope.config import Settings
from tests.servers import dashboard_server
from tests.web.conftest import XSS_NAME, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def dashboard(seeded: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = dashboard_server(tmp_path_factory.mktemp("dashboard-server"), seeded.tracking_uri)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def page(browser, dashboard: str) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=dashboard)
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    opened.dialogs = dialogs  # type: ignore[attr-defined]
    try:
        yield opened
    finally:
        context.close()


def _traces(page, selector: str) -> int:
    """How many Plotly traces are drawn in the charts under ``selector``."""
    return int(
        page.evaluate(
            "(s) => [...document.querySelectorAll(s + ' .js-plotly-plot')]"
            ".reduce((n, el) => n + (el.data ? el.data.length : 0), 0)",
            selector,
        )
    )


def test_runs_tabs_filter_sort_compare_and_best(page) -> None:
    page.goto("/experiments")
    page.get_by_role("link", name="wine-knn").click()
    page.wait_for_selector("table#runs tbody tr")
    total = page.locator("table#runs tbody tr").count()
    assert total >= 4
    screenshot(page, "runs")

    # tabs
    page.locator("a.tab[data-tab=inference]").click()
    page.wait_for_selector("a.tab.active[data-tab=inference]")
    assert page.locator("table#runs tbody tr td.empty").count() == 1
    page.locator("a.tab[data-tab=all]").click()
    page.wait_for_selector("a.tab.active[data-tab=all]")

    # filter
    page.get_by_label("filter").fill("params.`model.weights` = 'distance'")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()
    weights = page.locator("table#runs tbody tr").count()
    assert 0 < weights < total
    assert page.locator("#summary").inner_text().count(str(weights)) >= 1
    page.get_by_label("filter").fill("")
    page.get_by_role("button", name="Apply").click()
    page.wait_for_load_state()
    assert page.locator("table#runs tbody tr").count() == total

    # sort by accuracy ascending through the column header
    page.locator("a.sort[data-column='metrics.accuracy']").click()
    page.wait_for_load_state()
    header = page.locator("a.sort[data-column='metrics.accuracy']").inner_text()
    assert "▲" in header or "▼" in header

    # select three runs and compare them
    boxes = page.locator("input.select-run")
    for index in range(3):
        boxes.nth(index).check()
    assert page.locator("#compare-button").is_enabled()
    page.locator("#compare-button").click()
    page.wait_for_selector("#param-diff")
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length > 0")
    assert _traces(page, "#compare-charts") >= 3
    assert page.locator("#metric-table td.best").count() >= 1
    screenshot(page, "compare")

    # the best run, under a constraint
    page.goto("/experiments")
    page.get_by_role("link", name="breast-cancer", exact=True).click()
    page.locator("#best-link").click()
    page.get_by_label("constraints").fill("metrics.recall_1 >= 0.9")
    page.get_by_role("button", name="Find").click()
    page.wait_for_selector("#winner")
    assert "recall_1 >= 0.9" in page.locator("#winner .statement").inner_text()
    assert page.locator("#significance").count() == 1
    screenshot(page, "best")


def test_run_page_draws_evaluation_charts(page) -> None:
    page.goto("/experiments")
    page.get_by_role("link", name="breast-cancer", exact=True).click()
    page.locator("table#runs a.run-name", has_text="xgboost").click()
    page.wait_for_selector("#confusion-chart.js-plotly-plot")
    assert _traces(page, "#evaluation") >= 4  # confusion (2), ROC (2), PR
    assert _traces(page, "#history") >= 2
    assert page.locator("#per-class tbody tr").count() == 2
    screenshot(page, "run")


def test_hostile_run_name_is_text_and_runs_nothing(page) -> None:
    page.goto("/experiments")
    page.get_by_role("link", name="iris", exact=True).click()
    page.wait_for_selector("table#runs")
    assert page.get_by_text(XSS_NAME, exact=True).count() >= 1
    page.get_by_text(XSS_NAME, exact=True).first.click()
    page.wait_for_selector("#run-title")
    assert page.locator("#params").get_by_text("<script>alert(2)</script>").count() == 1
    assert page.dialogs == []  # type: ignore[attr-defined]
    assert page.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    screenshot(page, "hostile-names")


def test_run_page_draws_the_explanations(page) -> None:
    page.goto("/experiments")
    page.get_by_role("link", name="iris", exact=True).click()
    page.locator("table#runs a.run-name", has_text="random_forest").first.click()
    page.wait_for_selector("#explain-beeswarm.js-plotly-plot")
    page.wait_for_selector("#explain-waterfall.js-plotly-plot")
    dots = page.evaluate(
        "document.querySelector('#explain-beeswarm').data.reduce((n, t) => n + t.x.length, 0)"
    )
    assert dots == 4 * 30  # every feature of every held-out row
    assert page.evaluate("document.querySelector('#explain-waterfall').data[0].type") == "waterfall"
    assert _traces(page, "#explain") >= 3 + 4 + 1 + 1  # importance per class, swarm, more

    # another held-out row, chosen through the section's form
    page.locator("#explain-controls input[name=explain_row]").fill("5")
    page.locator("#explain-controls button").click()
    page.wait_for_selector("#explain-waterfall.js-plotly-plot")
    assert "explain_row=5" in page.url
    title = page.evaluate("document.querySelector('#explain-waterfall').layout.title.text")
    assert title.startswith("row 5:")
    screenshot(page, "explain")
