"""The study page and the Tuning tab, in process, on studies run by ``flowscope.tune``: what
they show is what Optuna's own storage says, read from the MLflow store alone."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from flowscope.analysis.query import ClientRunStore, SqlRunStore
from flowscope.tuning.names import TRIAL_NUMBER_TAG
from flowscope.tuning.view import study_view
from flowscope.web.study_charts import study_figures
from tests.conftest import make_settings
from tests.web.studies import PRUNED_AT, TunedStudy, objective, tune_study

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

TRIALS = 24


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> TunedStudy:
    return tune_study(
        tmp_path_factory.mktemp("studies"),
        study="page-quadratic",
        task="page-quadratic",
        trials=TRIALS,
    )


@pytest.fixture
def http(tuned: TunedStudy) -> Iterator[TestClient]:
    from flowscope.web import create_app

    with TestClient(create_app(tuned.settings), raise_server_exceptions=False) as client:
        yield client


def test_study_page_json_is_what_optuna_stored(tuned: TunedStudy, http: TestClient) -> None:
    study = optuna.load_study(study_name="page-quadratic", storage=tuned.storage)
    data = http.get(f"/studies/{tuned.parent_run_id}.json").json()
    assert data["ok"] is True and data["live"] is False
    assert data["study"]["name"] == "page-quadratic"
    assert data["study"]["objective"] == "loss" and data["study"]["directions"] == ["minimize"]

    best = study.best_trial
    assert data["best"]["number"] == best.number
    assert data["best"]["value"] == best.value
    assert data["best"]["params"] == best.params

    states = [trial.state.name for trial in study.trials]
    assert data["counts"] == {
        "COMPLETE": states.count("COMPLETE"),
        "PRUNED": len(PRUNED_AT),
        "FAIL": 1,
        "RUNNING": 0,
        "total": TRIALS,
    }
    by_number = {trial["number"]: trial for trial in data["trials"]}
    assert sorted(by_number) == list(range(TRIALS))
    runs = MlflowClient(tuned.settings.tracking_uri)
    for trial in study.trials:
        shown = by_number[trial.number]
        assert shown["state"] == trial.state.name
        assert shown["params"] == trial.params
        assert shown["value"] == trial.value  # a pruned trial's: its last report
        parent = runs.get_run(shown["run_id"]).data.tags["mlflow.parentRunId"]
        assert parent == tuned.parent_run_id
    # best value first by default (the study minimizes), trials without a value last
    values = [trial["value"] for trial in data["trials"] if trial["value"] is not None]
    assert values == sorted(values)
    first = next(trial for trial in data["trials"] if trial["state"] == "COMPLETE")
    assert first["number"] == best.number

    # optimization history: complete trials by number, the best value so far
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert data["history"]["number"] == [t.number for t in complete]
    assert data["history"]["best"] == [
        min(t.value for t in complete[: index + 1]) for index in range(len(complete))
    ]
    # intermediate values: every trial that reported, every report
    series = {item["number"]: item for item in data["intermediate"]["trials"]}
    assert data["intermediate"]["metric"] == "intermediate_loss"
    for trial in study.trials:
        steps = sorted(trial.intermediate_values)
        assert series[trial.number]["steps"] == steps
        assert series[trial.number]["values"] == [trial.intermediate_values[s] for s in steps]
    # the charts' columns hold every complete trial; importances are Optuna's, as logged
    assert data["space"]["numbers"] == [t.number for t in complete]
    params = {param["name"]: param for param in data["space"]["params"]}
    assert params["lr"]["log"] is True and params["booster"]["kind"] == "categorical"
    assert params["x"]["values"] == [t.params["x"] for t in complete]
    from flowscope.tuning import importances

    assert data["importances"]["importances"]["fanova"] == pytest.approx(
        importances(study, "fanova", seed=0)
    )
    assert data["contour"]["chosen_by"] == "fanova importance"
    assert {data["contour"]["x"]["name"], data["contour"]["y"]["name"]} <= set(params)


def test_both_run_stores_and_no_optuna_storage_give_the_same_page(tuned: TunedStudy) -> None:
    """The page reads the MLflow store only: with the Optuna storage gone it is the same,
    through SQL and through MLflow's client alike."""
    database = Path(tuned.storage.removeprefix("sqlite:///"))
    hidden = database.with_name("hidden.db")
    sql = SqlRunStore(tuned.settings)
    try:
        before = study_view(tuned.settings, sql, tuned.parent_run_id)
        database.rename(hidden)
        through_sql = study_view(tuned.settings, sql, tuned.parent_run_id)
        through_client = study_view(
            tuned.settings, ClientRunStore(tuned.settings), tuned.parent_run_id
        )
    finally:
        sql.close()
        if hidden.exists():
            hidden.rename(database)
    assert through_sql == before
    assert through_client == before


def test_study_page_html_draws_every_chart_and_links_trials(
    tuned: TunedStudy, http: TestClient
) -> None:
    page = http.get(f"/studies/{tuned.parent_run_id}")
    assert page.status_code == 200
    assert page.headers["link"] == (
        f'</studies/{tuned.parent_run_id}.json>; rel="alternate"; type="application/json"'
    )
    html = page.text
    for chart in ("history", "intermediate", "parallel", "slices", "contour", "importances"):
        assert f'id="chart-{chart}"' in html
    data = http.get(f"/studies/{tuned.parent_run_id}.json").json()
    for trial in data["trials"]:
        assert f'href="/runs/{trial["run_id"]}"' in html
    assert "hx-trigger" not in html  # a finished study is not polled
    assert 'class="state state-fail"' in html and 'class="state state-pruned"' in html
    # each trial's page leads back to its study; the study's run to its page
    trial_page = http.get(f"/runs/{data['trials'][0]['run_id']}").text
    assert f'href="/studies/{tuned.parent_run_id}"' in trial_page
    assert f'href="/studies/{tuned.parent_run_id}"' in http.get(f"/runs/{tuned.parent_run_id}").text


def test_figures_are_built_from_the_json(tuned: TunedStudy, http: TestClient) -> None:
    data = http.get(f"/studies/{tuned.parent_run_id}.json").json()
    figures = study_figures(data)
    assert set(figures) == {
        "history",
        "intermediate",
        "parallel",
        "slices",
        "contour",
        "importances",
    }
    history = figures["history"].data
    assert list(history[1].y) == data["history"]["best"]
    assert len(figures["intermediate"].data) == TRIALS
    axes = [dimension.label for dimension in figures["parallel"].data[0].dimensions]
    assert axes == ["loss", "booster", "lr (log10)", "x"]
    assert len(figures["slices"].data) == 3
    contour = figures["contour"].data[0]
    assert contour.z.shape == (
        len(data["contour"]["y"]["ticks"]),
        len(data["contour"]["x"]["ticks"]),
    )


def test_trials_sort_by_any_column_and_bad_input_is_clear(
    tuned: TunedStudy, http: TestClient
) -> None:
    path = f"/studies/{tuned.parent_run_id}.json"
    by_x = http.get(path, params={"sort": "params.x", "order": "desc"}).json()["trials"]
    xs = [trial["params"]["x"] for trial in by_x]
    assert xs == sorted(xs, reverse=True)
    numbers = [t["number"] for t in http.get(path, params={"sort": "number"}).json()["trials"]]
    assert numbers == list(range(TRIALS))
    states = [t["state"] for t in http.get(path, params={"sort": "state"}).json()["trials"]]
    assert states == sorted(states, key=["COMPLETE", "PRUNED", "FAIL", "RUNNING"].index)

    bad = http.get(path, params={"sort": "params.colour"})
    assert bad.status_code == 400
    assert "cannot sort trials by 'params.colour'" in bad.json()["error"]
    assert http.get(path, params={"order": "sideways"}).status_code == 400
    trial_id = by_x[0]["run_id"]
    not_a_study = http.get(f"/studies/{trial_id}.json")
    assert not_a_study.status_code == 404
    assert not_a_study.json()["error"] == f"run {trial_id} is not a study (it is a trial run)"
    assert http.get("/studies/0123456789abcdef0123456789abcdef.json").status_code == 404
    missing = http.get("/studies/0123456789abcdef0123456789abcdef")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]


def test_tuning_tab_lists_studies_with_their_trials(tuned: TunedStudy, http: TestClient) -> None:
    study = optuna.load_study(study_name="page-quadratic", storage=tuned.storage)
    data = http.get(f"/experiments/{tuned.experiment_id}.json", params={"tab": "tuning"}).json()
    (listed,) = data["studies"]
    assert listed["run_id"] == tuned.parent_run_id and listed["name"] == "page-quadratic"
    assert listed["status"] == "FINISHED"
    assert listed["counts"]["total"] == TRIALS
    assert listed["counts"]["PRUNED"] == len(PRUNED_AT) and listed["counts"]["FAIL"] == 1
    assert listed["best_value"] == study.best_value
    html = http.get(f"/experiments/{tuned.experiment_id}", params={"tab": "tuning"}).text
    assert f'href="/studies/{tuned.parent_run_id}"' in html and 'id="studies"' in html
    # other tabs keep listing runs
    assert "studies" not in http.get(f"/experiments/{tuned.experiment_id}.json").json()


def test_compare_works_on_trials(tuned: TunedStudy, http: TestClient) -> None:
    data = http.get(f"/studies/{tuned.parent_run_id}.json").json()
    chosen = [trial["run_id"] for trial in data["trials"][:3]]
    # the study page's compare form names the objective as the metric
    compared = http.get("/compare.json", params={"runs": ",".join(chosen), "metric": "loss"})
    assert compared.status_code == 200, compared.text
    body = compared.json()
    assert body["run_ids"] == chosen and body["metric"] == "loss"
    assert "x" in {entry["name"] for entry in body["params"]}
    assert "intermediate_loss" in body["histories"]
    page = http.get("/compare", params={"runs": chosen})
    assert page.status_code == 200 and "chart" in page.text
    study_page = http.get(f"/studies/{tuned.parent_run_id}").text
    assert '<input type="hidden" name="metric" value="loss">' in study_page


def test_the_study_links_to_the_comparison_report_of_its_trials(
    tuned: TunedStudy, http: TestClient
) -> None:
    import html

    page = http.get(f"/studies/{tuned.parent_run_id}").text
    link = re.search(r'<a id="study-report" href="([^"]+)"', page)
    assert link is not None
    url = html.unescape(link[1])
    assert url == http.get(f"/studies/{tuned.parent_run_id}.json").json()["report_url"]
    answer = http.get(url, headers={"accept": "application/json"})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    study = tuned.study()
    by_number = {trial.number: trial for trial in study.trials}
    trial_runs = {row["run_id"] for row in report["table"]["rows"]}
    assert len(trial_runs) == len(study.trials)  # every trial of the study, and only those
    assert report["metric"]["name"] == "loss" and report["metric"]["direction"] == "min"
    best_run = MlflowClient(tuned.settings.tracking_uri).get_run(report["best"]["run_id"])
    number = int(best_run.data.tags[TRIAL_NUMBER_TAG])
    assert by_number[number].value == study.best_value
    assert http.get(url).status_code == 200  # and the page itself draws


def test_a_running_study_is_polled_and_shows_its_running_trials(tmp_path: Path) -> None:
    from flowscope.tuning import StudyTracker
    from flowscope.web import create_app

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")
    study = optuna.create_study(study_name="live", direction="minimize")
    tracker = StudyTracker("live", settings=settings, live_after=0.0)  # runs as they go
    tracker.begin(study)
    study.optimize(tracker.wrap(objective), n_trials=3, callbacks=[tracker])
    running = study.ask()  # a trial under way: its run is open
    wrapped = tracker.wrap(lambda trial: trial.report(1.0, 0))
    wrapped(running)
    assert tracker.wait_delivered(running=True)  # the open trial's records too
    parent = tracker.parent_run_id
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        data = http.get(f"/studies/{parent}.json").json()
        assert data["live"] is True and data["study"]["status"] == "RUNNING"
        assert data["counts"]["RUNNING"] == 1 and data["counts"]["total"] == 4
        html = http.get(f"/studies/{parent}").text
        assert 'hx-trigger="every 10s"' in html and 'hx-select="#study-body"' in html
        study.tell(running, 2.0)
        tracker(study, study.trials[-1])
        tracker.finish(study)
        done = http.get(f"/studies/{parent}.json").json()
        assert done["live"] is False and done["counts"]["COMPLETE"] == 4
        assert "hx-trigger" not in http.get(f"/studies/{parent}").text


def test_a_study_of_two_objectives_lists_values_and_no_best(tmp_path: Path) -> None:
    import flowscope
    from flowscope.web import create_app

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")

    def two(trial: Any) -> tuple[float, float]:
        x = trial.suggest_float("x", 0.0, 1.0)
        return x, 1.0 - x * x

    result = flowscope.tune(
        two, study="pareto", n_trials=5, directions=["min", "max"], settings=settings
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as http:
        data = http.get(f"/studies/{result.parent_run_id}.json").json()
        page = http.get(f"/studies/{result.parent_run_id}")
    assert data["best"] is None and data["history"] is None and data["contour"] is None
    by_number = {trial["number"]: trial for trial in data["trials"]}
    for trial in result.study.trials:
        assert by_number[trial.number]["values"] == trial.values
    assert page.status_code == 200 and "several objectives" in page.text
