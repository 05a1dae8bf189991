"""The comparison report on a real KNN grid: 12 runs trained through flowscope's own
training path on breast cancer, checked against what ``MlflowClient`` and Optuna say."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import optuna
import pytest
from mlflow import MlflowClient
from optuna.distributions import CategoricalDistribution
from optuna.importance import (
    FanovaImportanceEvaluator,
    PedAnovaImportanceEvaluator,
    get_param_importances,
)

from flowscope.analysis.query import reading_runs
from flowscope.analysis.significance import significance_between
from flowscope.artifacts import read_json_artifact
from flowscope.config import Settings
from flowscope.reports import CompareQuery, compare_task, render_comparison, write_comparison
from tests.reports.knn_grid import GRID, SCRIPT, TASK, compare_command, train_knn_grid


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return train_knn_grid(tmp_path_factory.mktemp("grid"))


def report(settings: Settings, **query: Any) -> dict[str, Any]:
    with reading_runs(settings) as store:
        return compare_task(settings, store, TASK, CompareQuery(**query))


@pytest.fixture(scope="module")
def by_log_loss(grid: Settings) -> dict[str, Any]:
    return report(grid, metric="log_loss")


def client_runs(settings: Settings) -> list[Any]:
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(TASK)
    assert experiment is not None
    return client.search_runs([experiment.experiment_id])


def ranked(runs: list[Any], metric: str, direction: str) -> list[Any]:
    """The best-run rule: best score, then the earliest start, then the smaller id."""
    sign = -1 if direction == "max" else 1
    return sorted(
        runs, key=lambda r: (sign * r.data.metrics[metric], r.info.start_time, r.info.run_id)
    )


def test_best_run_is_what_mlflow_client_says(grid: Settings, by_log_loss: dict[str, Any]) -> None:
    runs = ranked(client_runs(grid), "log_loss", "min")
    winner, second = runs[0], runs[1]
    best = by_log_loss["best"]
    assert (best["run_id"], best["run_name"]) == (winner.info.run_id, winner.info.run_name)
    assert best["run_name"] == "knn-25-distance-euclidean"
    assert best["direction"] == "min" and best["label"] == "log_loss"
    assert best["score"] == winner.data.metrics["log_loss"]
    for name, value in best["metrics"].items():
        assert value == winner.data.metrics[name]
    assert set(best["metrics"]) >= {"log_loss", "accuracy", "f1", "roc_auc"}
    assert best["params"] == winner.data.params
    assert best["training_time_s"] == winner.data.metrics["training_time_s"]
    assert best["runner_up"]["run_id"] == second.info.run_id
    assert best["margin"] == pytest.approx(
        second.data.metrics["log_loss"] - winner.data.metrics["log_loss"]
    )
    verdict = significance_between(grid, winner.info.run_id, second.info.run_id, "log_loss")
    assert verdict is not None
    assert best["significance"] == {"available": True, **verdict}
    word = "significant" if verdict["significant"] else "not significant"
    assert word in best["summary"] and "runner-up" in best["summary"]


def test_per_class_metrics_and_confusion_matrix_are_the_runs(
    grid: Settings, by_log_loss: dict[str, Any]
) -> None:
    best = by_log_loss["best"]
    client = MlflowClient(grid.tracking_uri)
    metrics = client.get_run(best["run_id"]).data.metrics
    logged = read_json_artifact(client, best["run_id"], "evaluation/confusion_matrix.json")
    confusion = best["confusion"]
    assert confusion["counts"] == logged["counts"]
    assert confusion["labels"] == logged["labels"] == [0, 1]
    (tn, fp), (fn, tp) = logged["counts"]  # breast cancer: 1 (benign) is the positive class
    assert confusion["binary"] == {
        "positive_label": 1,
        "positive_name": "benign (1)",
        "tp": tp,
        "tn": tn,
        "fp": fp,
        "fn": fn,
    }
    by_label = {row["label"]: row for row in best["per_class"]}
    for label in (0, 1):
        for name in ("precision", "recall", "f1", "support"):
            assert by_label[label][name] == metrics[f"{name}_{label}"]
    assert by_label[0]["name"] == "malignant"
    assert by_label[None]["f1"] == metrics["f1"]


def test_registered_version_and_the_command_that_promotes_it(by_log_loss: dict[str, Any]) -> None:
    [version] = by_log_loss["best"]["registered"]
    assert (version["name"], version["version"]) == (TASK, 1)
    assert version["uri"] == f"models:/{TASK}/1"
    [step] = by_log_loss["next_steps"]
    assert step["command"] == f"flowscope promote {TASK} --policy policy.yaml --version 1"


def test_ties_go_to_the_earliest_run_and_the_model_can_be_registered(grid: Settings) -> None:
    data = report(grid)  # the main metric: accuracy, on which several runs tie
    assert data["metric"] == {
        "name": "accuracy",
        "direction": "max",
        "value": "last",
        "label": "accuracy",
    }
    winner = ranked(client_runs(grid), "accuracy", "max")[0]
    assert data["best"]["run_id"] == winner.info.run_id
    assert data["best"]["tie_break"] and "earliest" in data["best"]["tie_break"]
    assert not data["best"]["registered"] and data["best"]["has_model"]
    [step] = data["next_steps"]
    assert step["command"] == f"flowscope register {winner.info.run_id} {TASK}"


def test_every_run_is_in_the_table_and_the_csv(grid: Settings, by_log_loss: dict[str, Any]) -> None:
    runs = ranked(client_runs(grid), "log_loss", "min")
    rows = by_log_loss["table"]["rows"]
    assert [row["run_id"] for row in rows] == [run.info.run_id for run in runs]
    assert [row["rank"] for row in rows] == list(range(1, 13))
    keys = [column["key"] for column in by_log_loss["table"]["columns"]]
    # only the parameters that differ, every headline metric, the training time
    params = [key for key in keys if key.startswith("params.")]
    assert params == ["params.model.metric", "params.model.n_neighbors", "params.model.weights"]
    assert {"metrics.log_loss", "metrics.accuracy", "metrics.f1", "time_s"} <= set(keys)
    parsed = list(csv.DictReader(io.StringIO(render_comparison(by_log_loss, "csv"))))
    assert len(parsed) == len(runs) == 12
    assert [row["run_id"] for row in parsed] == [run.info.run_id for run in runs]
    assert float(parsed[0]["metrics.log_loss"]) == runs[0].data.metrics["log_loss"]


@pytest.mark.parametrize(
    ("evaluator", "optunas"),
    [("fanova", FanovaImportanceEvaluator(seed=0)), ("ped_anova", PedAnovaImportanceEvaluator())],
)
def test_importance_is_optunas_evaluator_on_the_runs(
    grid: Settings, evaluator: str, optunas: Any
) -> None:
    data = report(grid, metric="log_loss", importance=evaluator)
    # each parameter takes three values or fewer: categorical, its choices in sorted order
    distributions = {
        f"model.{name}": CategoricalDistribution(tuple(str(v) for v in sorted(values)))
        for name, values in GRID.items()
    }
    trials = [
        optuna.trial.create_trial(
            params={name: run.data.params[name] for name in distributions},
            distributions=distributions,
            value=run.data.metrics["log_loss"],
        )
        for run in ranked(client_runs(grid), "log_loss", "min")
    ]
    study = optuna.create_study(direction="minimize")
    study.add_trials(trials)
    expected = get_param_importances(study, evaluator=optunas)
    insights = data["insights"]
    assert insights["available"] and insights["evaluator"] == evaluator
    assert list(insights["importances"]) == list(expected)
    assert insights["importances"] == pytest.approx(dict(expected))


def test_insights_name_the_values_that_do_best(by_log_loss: dict[str, Any]) -> None:
    insights = by_log_loss["insights"]
    top = insights["params"][0]
    assert top["name"] == "model.n_neighbors" and top["best"] == "model.n_neighbors=25"
    groups = {group["label"]: group for group in top["groups"]}
    scores = [row["score"] for row in by_log_loss["table"]["rows"]]
    near = [
        row["score"]
        for row in by_log_loss["table"]["rows"]
        if row["params.model.n_neighbors"] == "25"
    ]
    assert groups["model.n_neighbors=25"]["count"] == 4
    assert groups["model.n_neighbors=25"]["mean"] == pytest.approx(sum(near) / 4)
    assert sum(group["count"] for group in top["groups"]) == len(scores)
    assert any(
        sentence.startswith("Runs with model.n_neighbors=25")
        and "consistently performed well" in sentence
        for sentence in insights["sentences"]
    )


def test_too_few_runs_say_why_there_are_no_insights(grid: Settings) -> None:
    data = report(grid, metric="log_loss", where="params.`model.n_neighbors` = '25'")
    assert data["counts"]["runs"] == 4
    assert not data["insights"]["available"]
    assert data["insights"]["reason"].startswith("only 4 runs with log_loss")
    html = render_comparison(data, "html")
    assert "No insights: only 4 runs" in html


def test_html_is_self_contained_deterministic_and_escaped(by_log_loss: dict[str, Any]) -> None:
    html = render_comparison(by_log_loss, "html")
    assert html == render_comparison(json.loads(json.dumps(by_log_loss)), "html")
    assert html.startswith("<!doctype html>")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', html)) == 3


def test_markdown_writes_its_charts_and_the_csv_beside_it(
    by_log_loss: dict[str, Any], tmp_path: Path
) -> None:
    written = write_comparison(by_log_loss, "markdown", tmp_path / "out" / "report.md")
    names = sorted(path.name for path in written)
    assert names == [
        "report-metric.png",
        "report-parallel.png",
        "report-params.png",
        "report-runs.csv",
        "report.md",
    ]
    text = (tmp_path / "out" / "report.md").read_text()
    for name in names[:4]:
        assert f"]({name})" in text
    assert (tmp_path / "out" / "report-metric.png").read_bytes().startswith(b"\x89PNG")
    assert SCRIPT not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    again = tmp_path / "again"
    write_comparison(by_log_loss, "markdown", again / "report.md")
    for path in written:
        assert (again / path.name).read_bytes() == path.read_bytes()


def test_the_command_writes_the_report(grid: Settings, tmp_path: Path) -> None:
    done = compare_command(grid, TASK, "--metric", "log_loss", "-f", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["best"]["run_name"] == "knn-25-distance-euclidean"
    out = tmp_path / "report.html"
    done = compare_command(grid, TASK, "--metric", "log_loss", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("<!doctype html>")
    assert len(list(csv.DictReader((tmp_path / "report-runs.csv").open()))) == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuchtask"], "no experiment named 'nosuchtask'"),
        ([TASK, "--metric", "nope"], "has the metric 'nope'"),
        ([TASK, "--where", "metrics.f1 >>> 2"], "bad filter"),
        ([TASK, "--where", "metrics.f1 > 2"], "no training runs of 'cancer-knn' match"),
        ([TASK, "--kind", "inference"], "kind must be one of training, trial"),
        ([TASK, "-f", "md"], "name the file with -o"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(grid: Settings, args: list[str], message: str) -> None:
    done = compare_command(grid, *args)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    if "-f" not in args:  # usage errors print the command's help first
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_studys_trials_compare_as_runs(settings: Settings) -> None:
    import flowscope

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10, 10)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        return (x - 2) ** 2 + (1.0 if kind == "b" else 0.0)

    result = flowscope.tune(
        objective,
        study="quadratic",
        n_trials=14,
        direction="min",
        sampler=optuna.samplers.RandomSampler(seed=1),
        settings=settings,
    )
    with reading_runs(settings) as store:
        query = CompareQuery(kind="trial", metric="value", direction="min")
        data = compare_task(settings, store, "quadratic", query)
    best, trial = data["best"], result.study.best_trial
    assert data["counts"]["runs"] == 14 and best["direction"] == "min"
    assert best["score"] == trial.value
    assert best["params"] == {key: str(value) for key, value in trial.params.items()}
    assert best["confusion"] is None and best["per_class"] is None and not best["has_model"]
    assert data["next_steps"][0]["command"] is None
    kinds = {param["name"]: param["kind"] for param in data["charts"]["params"]}
    assert kinds == {"x": "numeric", "kind": "categorical"}
    assert data["insights"]["available"]
    assert next(iter(data["insights"]["importances"])) == "x"
    html = render_comparison(data, "html")
    assert "Confusion matrix" not in html and html.count("data:image/png;base64,") == 3
