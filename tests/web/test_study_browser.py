"""A study's page in real Chromium, served by a real ``flowscope ui`` process: every chart
drawn, the trials table (one row per trial, states coloured, sortable, each trial opening
its run), the compare page on trials, and a running study's page refreshing by itself
until the study ends."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from flowscope.web.study_charts import STATE_COLOURS
from tests.servers import dashboard_server
from tests.web.conftest import screenshot
from tests.web.studies import FAILS_AT, TunedStudy, objective, tune_study

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TASK = "browser-studies"
STUDY = "browser-quadratic"
TRIALS = 12
CHARTS = ("history", "intermediate", "parallel", "slices", "contour", "importances")
# A refresh of a running study's page comes every 10 s; this leaves room for two.
REFRESH_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def studies(tmp_path_factory: pytest.TempPathFactory) -> TunedStudy:
    return tune_study(
        tmp_path_factory.mktemp("study-browser"), study=STUDY, task=TASK, trials=TRIALS
    )


@pytest.fixture(scope="module")
def dashboard(studies: TunedStudy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = dashboard_server(
        tmp_path_factory.mktemp("study-server"), studies.settings.tracking_uri
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _charts_drawn(page: Any) -> None:
    """Wait until Plotly drew every figure the page carries, and htmx (after a refresh)
    has settled the page: a figure must keep the class Plotly's styles hang on."""
    page.wait_for_function(
        "() => { const all = document.querySelectorAll('#study-charts [data-figure]');"
        " return all.length > 0 && !document.querySelector('.htmx-added, .htmx-settling')"
        " && [...all].every((el) => el.classList.contains('js-plotly-plot')"
        " && el._fullData && el.querySelector('.main-svg')); }"
    )


def _chart_facts(page: Any) -> dict[str, dict[str, Any]]:
    """What is drawn in each chart of the page: its traces and the marks on screen."""
    facts: dict[str, dict[str, Any]] = page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#study-charts [data-figure]')]
          .map((el) => [el.dataset.name, {
            traces: el._fullData.length,
            types: el._fullData.map((t) => t.type),
            names: el._fullData.map((t) => t.name),
            ys: el._fullData.map((t) => Array.from(t.y || [])),
            points: el.querySelectorAll('.scatterlayer .point').length,
            lines: [...el.querySelectorAll('.scatterlayer .js-line')]
              .filter((p) => (p.getAttribute('d') || '').length > 1).length,
            bars: el.querySelectorAll('.barlayer .point').length,
            contourLevels: el.querySelectorAll('.contourlayer .contourlevel').length,
            parallelAxes: el.querySelectorAll('.parcoords .y-axis').length,
            canvases: el.querySelectorAll('canvas').length,
          }]))"""
    )
    return facts


def _rows(page: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = page.evaluate(
        """() => [...document.querySelectorAll('#trials tbody tr')].map((row) => ({
            number: Number(row.dataset.number),
            rowClass: row.className,
            state: row.querySelector('.state').textContent.trim(),
            colour: getComputedStyle(row.querySelector('.state')).color,
            background: getComputedStyle(row).backgroundColor,
            cells: [...row.querySelectorAll('td')].map((td) => td.textContent.trim()),
          }))"""
    )
    return rows


def _rgb(colour: str) -> str:
    red, green, blue = (int(colour[index : index + 2], 16) for index in (1, 3, 5))
    return f"rgb({red}, {green}, {blue})"


def test_study_page_draws_every_chart(page: Any, studies: TunedStudy) -> None:
    study = studies.study()
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    # from the Tuning tab of the study's experiment, as a person gets there
    page.goto(f"/experiments/{studies.experiment_id}?tab=tuning")
    page.locator("#studies a.study-name", has_text=STUDY).click()
    page.wait_for_selector("#study-title")
    assert page.url.endswith(f"/studies/{studies.parent_run_id}")
    _charts_drawn(page)
    facts = _chart_facts(page)
    assert tuple(facts) == CHARTS

    history = facts["history"]
    assert history["names"] == ["loss", "best so far (min)"]
    assert history["points"] == len(complete)  # one marker per complete trial
    assert history["lines"] == 1  # the best-so-far line
    best_so_far = [min(t.value for t in complete[: index + 1]) for index in range(len(complete))]
    assert history["ys"][1] == pytest.approx(best_so_far)

    reported = [t for t in study.trials if t.intermediate_values]
    assert facts["intermediate"]["traces"] == len(reported) == TRIALS
    assert facts["intermediate"]["lines"] == len(reported)

    # parallel coordinates: an axis for the objective and each parameter, lines in WebGL
    assert facts["parallel"]["types"] == ["parcoords"]
    assert facts["parallel"]["parallelAxes"] == 1 + len(study.best_params)
    assert facts["parallel"]["canvases"] > 0

    assert facts["slices"]["traces"] == len(study.best_params)
    assert facts["slices"]["points"] == len(study.best_params) * len(complete)

    assert facts["contour"]["types"] == ["contour", "scatter"]
    assert facts["contour"]["contourLevels"] > 0
    assert facts["contour"]["points"] == len(complete)

    assert facts["importances"]["names"] == ["fanova", "ped_anova"]
    assert facts["importances"]["bars"] == 2 * len(study.best_params)

    best = study.best_trial
    assert f"trial {best.number}" in page.locator("#best-trial").inner_text()
    assert page.problems == []
    screenshot(page, "study")


def test_trials_table_colours_states_sorts_and_opens_trials(page: Any, studies: TunedStudy) -> None:
    study = studies.study()
    page.goto(f"/studies/{studies.parent_run_id}")
    rows = _rows(page)
    assert sorted(row["number"] for row in rows) == list(range(TRIALS))
    states = {trial.number: trial.state.name for trial in study.trials}
    for row in rows:
        state = states[row["number"]]
        assert row["state"] == state.lower()
        assert f"trial-{state.lower()}" in row["rowClass"]
        assert row["colour"] == _rgb(STATE_COLOURS[state])
    backgrounds = {states[row["number"]]: row["background"] for row in rows}
    assert len({backgrounds[s] for s in ("COMPLETE", "PRUNED", "FAIL")}) == 3

    # best value first (the study minimizes; a pruned trial's value is its last report),
    # the failed trial, which has none, last
    valued = sorted((t for t in study.trials if t.value is not None), key=lambda t: t.value)
    assert [row["number"] for row in rows] == [t.number for t in valued] + [FAILS_AT]

    # sorting through the column headers: a parameter, descending then ascending
    header = page.locator("#trials a.sort[data-sort='params.x']")
    header.click()
    page.wait_for_url("**sort=params.x**order=desc**")
    by_x = sorted(study.trials, key=lambda t: (t.params["x"], t.number), reverse=True)
    assert [row["number"] for row in _rows(page)] == [t.number for t in by_x]
    assert "▼" in header.inner_text()
    header.click()
    page.wait_for_url("**sort=params.x**order=asc**")
    assert [row["number"] for row in _rows(page)] == [t.number for t in reversed(by_x)]
    page.locator("#trials a.sort[data-sort='number']").click()
    page.wait_for_url("**sort=number**order=desc**")
    assert [row["number"] for row in _rows(page)] == list(reversed(range(TRIALS)))

    # a trial opens its run's page, which leads back to the study
    best = study.best_trial
    with page.expect_navigation() as opened:
        page.locator(f"#trials tr[data-number='{best.number}'] a.run-name").click()
    assert opened.value.status == 200
    assert page.locator("#run-title").inner_text().startswith(f"trial-{best.number}")
    params = page.locator("#params").inner_text()
    assert "booster" in params and str(best.params["booster"]) in params
    assert page.locator("#study-link").get_attribute("href") == f"/studies/{studies.parent_run_id}"
    assert page.problems == []


def test_selected_trials_compare(page: Any, studies: TunedStudy) -> None:
    page.goto(f"/studies/{studies.parent_run_id}")
    numbers = [row["number"] for row in _rows(page)[:3]]
    boxes = page.locator("#trials input.select-run")
    assert page.locator("#compare-button").is_disabled()
    for index in range(3):
        boxes.nth(index).check()
    page.locator("#compare-button").click()
    page.wait_for_selector("#param-diff")
    page.wait_for_function(
        "() => { const all = document.querySelectorAll('#compare-charts [data-figure]');"
        " return all.length > 0 && [...all].every((el) => el.classList.contains('js-plotly-plot')"
        " && el._fullData && el._fullData.length > 0); }"
    )
    assert page.locator("h1").inner_text() == "Compare 3 runs"
    header = page.locator("#param-diff thead").inner_text()
    assert all(f"trial-{number}" in header for number in numbers)
    assert {"x", "lr"} <= set(page.locator("#param-diff tbody th").all_inner_texts())
    assert page.locator("select[name=metric] option:checked").inner_text() == "loss"
    names = page.evaluate(
        "[...document.querySelectorAll('#compare-charts [data-figure]')]"
        ".map((el) => el.dataset.name)"
    )
    assert "history:intermediate_loss" in names and "parallel" in names
    # the best of the three by the study's objective is marked
    loss = page.locator("#metric-table tr", has=page.locator("th", has_text="loss")).first
    assert loss.locator("td.best").count() == 1
    assert page.problems == []
    screenshot(page, "study-compare")


def test_running_study_page_refreshes_until_the_study_ends(page: Any, studies: TunedStudy) -> None:
    """A study still running: its page polls, shows a trial that ends meanwhile with its
    charts drawn anew, and stops polling once the study has ended."""
    from flowscope.tuning import StudyTracker

    study = optuna.create_study(
        study_name="browser-live",
        direction="minimize",
        sampler=optuna.samplers.RandomSampler(seed=5),
    )
    tracker = StudyTracker(TASK, metric_name="loss", settings=studies.settings)
    tracker.begin(study)
    study.optimize(tracker.wrap(objective), n_trials=4, callbacks=[tracker])
    assert tracker.wait_delivered()
    parent = tracker.parent_run_id
    page.goto(f"/studies/{parent}")
    _charts_drawn(page)
    assert page.locator("#study-body").get_attribute("data-live") == "1"
    assert page.locator("#live-note").is_visible()
    assert len(_rows(page)) == 4
    assert page.evaluate(
        "() => { window.replaced = document.querySelector('#chart-history');"
        " return typeof window.replaced._responsiveChartHandler === 'function'; }"
    )

    study.optimize(tracker.wrap(objective), n_trials=1, callbacks=[tracker])
    assert tracker.wait_delivered()
    page.wait_for_function(
        "(n) => document.querySelectorAll('#trials tbody tr').length === n",
        arg=5,
        timeout=REFRESH_TIMEOUT_MS,
    )
    _charts_drawn(page)
    # the figures the refresh replaced let go of the window (their resize handlers)
    assert page.evaluate(
        "() => !window.replaced.isConnected && window.replaced._fullData === undefined"
        " && window.replaced._responsiveChartHandler === undefined"
    )
    complete = [t.number for t in study.trials if t.state.name == "COMPLETE"]
    drawn = page.evaluate("Array.from(document.querySelector('#chart-history')._fullData[0].x)")
    assert drawn == complete
    assert page.locator("[data-state=COMPLETE]").inner_text() == str(len(complete))

    tracker.finish(study)
    page.wait_for_function(
        "() => document.querySelector('#study-body').dataset.live === '0'",
        timeout=REFRESH_TIMEOUT_MS,
    )
    assert page.locator("#live-note").count() == 0
    assert page.locator("#study-body").get_attribute("hx-trigger") is None
    assert page.locator("#study-title .status").inner_text() == "finished"
    _charts_drawn(page)
    assert page.problems == []
    screenshot(page, "study-refreshed")
