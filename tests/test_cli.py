"""The ``flowscope`` command as a user runs it: a real process, a real store."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from tests.servers import MlflowServer


def flowscope(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWSCOPE_", "MLFLOW_"))}
    return subprocess.run(
        [sys.executable, "-m", "flowscope.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A working folder with two runs of breast_cancer and one of iris in ./mlflow.db."""
    root = tmp_path_factory.mktemp("workspace")
    for args in (
        ["--model", "logistic_regression", "--threshold", "0.5", "--threshold", "0.43"],
        ["--model", "random_forest", "--param", "n_estimators=30", "--register", "cancer"],
    ):
        done = flowscope(root, "train", "--dataset", "breast_cancer", *args)
        assert done.returncode == 0, done.stderr
        assert "run " in done.stdout
    done = flowscope(root, "train", "--dataset", "iris", "--model", "knn", "--task", "flowers")
    assert done.returncode == 0, done.stderr
    return root


def test_train_writes_to_the_default_store_in_the_working_folder(workspace: Path) -> None:
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("breast_cancer")
    assert experiment is not None
    assert len(client.search_runs([experiment.experiment_id])) == 2
    assert client.get_experiment_by_name("flowers") is not None
    assert (workspace / "mlartifacts").is_dir()
    assert [v.version for v in client.search_model_versions("name = 'cancer'")] == [1]


def test_runs_lists_every_run_as_json_and_csv(workspace: Path) -> None:
    listed = flowscope(workspace, "runs", "breast_cancer", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(row["params.model_type"] for row in rows) == [
        "logistic_regression",
        "random_forest",
    ]
    as_csv = flowscope(workspace, "runs", "breast_cancer", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert {row["run_id"] for row in parsed} == {row["run_id"] for row in rows}


def test_best_states_the_winner_and_writes_every_run(workspace: Path) -> None:
    client = MlflowClient(f"sqlite:///{workspace / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("breast_cancer")
    runs = client.search_runs([experiment.experiment_id])
    expected = max(runs, key=lambda run: run.data.metrics["f1"])
    out = workspace / "all.csv"
    done = flowscope(
        workspace, "best", "breast_cancer", "--metric", "f1", "--csv", str(out), "-f", "json"
    )
    assert done.returncode == 0, done.stderr
    best = json.loads(done.stdout)
    assert best["winner"]["run_id"] == expected.info.run_id
    assert best["direction"] == "max"
    assert best["value"] == expected.data.metrics["f1"]
    assert sum(map(sum, best["confusion_matrix"]["counts"])) == 114  # the held-out rows
    assert len(list(csv.DictReader(out.open()))) == 2
    table = flowscope(workspace, "best", "breast_cancer", "--metric", "log_loss")
    assert "minimum" in table.stdout and "confusion matrix" in table.stdout


def test_best_with_a_constraint_nobody_meets(workspace: Path) -> None:
    done = flowscope(workspace, "best", "breast_cancer", "--where", "metrics.recall_1 > 1.5")
    assert done.returncode == 1
    assert "no run matching" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "nosuchtask"], "no experiment named 'nosuchtask'"),
        (["runs", "breast_cancer", "--where", "metrics.f1 >>> 2"], "bad filter"),
        (["train", "--dataset", "missing.csv", "--target", "y"], "missing.csv"),
        (["train", "--dataset", "iris", "--model", "forest"], "unknown model type"),
        (["train", "--dataset", "iris", "--param", "depth"], "KEY=VALUE"),
        (["runs", "breast_cancer", "--format", "xml"], "xml"),
    ],
)
def test_errors_are_one_clear_line(workspace: Path, args: list[str], message: str) -> None:
    done = flowscope(workspace, *args)
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_malformed_csv_is_refused_with_the_file_named(workspace: Path) -> None:
    bad = workspace / "broken.csv"
    bad.write_text('a,b\n1,2\n3,"unclosed\n')
    done = flowscope(workspace, "train", "--dataset", str(bad), "--target", "b")
    assert done.returncode == 1
    assert "broken.csv" in done.stderr
    assert "Traceback" not in done.stderr


def test_sync_status_when_nothing_is_pending(workspace: Path) -> None:
    done = flowscope(workspace, "sync", "--status")
    assert done.returncode == 0
    assert "nothing pending" in done.stdout


def test_ui_get_prints_json_and_fails_on_errors(workspace: Path) -> None:
    done = flowscope(workspace, "ui", "--get", "/experiments.json")
    assert done.returncode == 0, done.stderr
    names = {e["name"] for e in json.loads(done.stdout)["experiments"]}
    assert {"breast_cancer", "flowers"} <= names
    missing = flowscope(workspace, "ui", "--get", "/runs/nope.json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["status"] == 404


T0 = 1_700_000_000_000


def _seed_runs(tracking_uri: str, task: str, runs: list[dict[str, Any]]) -> list[str]:
    """Runs through plain MlflowClient, one second apart in list order: each a dict with
    ``name``, optional ``kind``, ``params`` and ``history`` (metric -> values by step)."""
    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment(task)
    ids = []
    for second, spec in enumerate(runs):
        tags = {"flowscope.kind": spec["kind"]} if spec.get("kind") else {}
        start = T0 + second * 1000
        run = client.create_run(experiment, start_time=start, tags=tags, run_name=spec["name"])
        metrics = [
            Metric(key, value, start + step, step)
            for key, values in spec.get("history", {}).items()
            for step, value in enumerate(values)
        ]
        params = [Param(key, value) for key, value in spec.get("params", {}).items()]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id, end_time=start + 500)
        ids.append(run.info.run_id)
    return ids


_SWEEP = [
    {"name": "trial-1", "kind": "trial"},
    {"name": "trial-2", "kind": "trial"},
    {"name": "study", "kind": "tuning"},
    {"name": "refit"},
]


def test_runs_limit_counts_only_the_kind_asked(workspace: Path) -> None:
    """Two trials, newer runs of other kinds: --kind trial --limit 1 is the newest trial."""
    _seed_runs(f"sqlite:///{workspace / 'mlflow.db'}", "sweep", _SWEEP)
    for kind, expected in (("trial", ["trial-2"]), ("tuning", ["study"]), ("training", ["refit"])):
        done = flowscope(workspace, "runs", "sweep", "--kind", kind, "--limit", "1", "-f", "json")
        assert done.returncode == 0, done.stderr
        assert [row["run_name"] for row in json.loads(done.stdout)] == expected
    done = flowscope(workspace, "runs", "sweep", "--kind", "trial", "-f", "json")
    assert [row["run_name"] for row in json.loads(done.stdout)] == ["trial-2", "trial-1"]


@pytest.mark.server
def test_runs_limit_on_a_tracking_server(workspace: Path, mlflow_server: MlflowServer) -> None:
    _seed_runs(mlflow_server.url, "sweep", _SWEEP)
    done = flowscope(
        workspace,
        *("runs", "sweep", "--kind", "trial", "--limit", "1", "-f", "json"),
        *("--tracking-uri", mlflow_server.url),
    )
    assert done.returncode == 0, done.stderr
    assert [row["run_name"] for row in json.loads(done.stdout)] == ["trial-2"]


def test_best_ranks_by_last_min_or_max_value(workspace: Path) -> None:
    ids = _seed_runs(
        f"sqlite:///{workspace / 'mlflow.db'}",
        "steps",
        [
            {"name": "a", "history": {"acc": [0.5, 0.9]}},
            {"name": "b", "history": {"acc": [0.95, 0.6]}},
            {"name": "c", "history": {"acc": [0.7]}},
            {"name": "d", "history": {"acc": [0.9]}},  # ties a on the last value, started later
            {"name": "e", "history": {"acc": [float("nan")]}},
            {"name": "f", "history": {"loss": [0.1]}},
        ],
    )

    def best(*args: str) -> dict[str, Any]:
        done = flowscope(workspace, "best", "steps", "--metric", "acc", "-f", "json", *args)
        assert done.returncode == 0, done.stderr
        return dict(json.loads(done.stdout))

    last = best()
    assert (last["winner"]["run_id"], last["value"], last["scored_by"]) == (ids[0], 0.9, "last")
    assert last["tie_break"] == "2 runs share acc = 0.9; the earliest started wins"
    assert (last["considered"], last["without_metric"]) == (6, 2)
    highest = best("--value", "max")
    assert (highest["winner"]["run_name"], highest["value"]) == ("b", 0.95)
    assert highest["winner"]["metrics.acc"] == 0.6  # the row still shows the last value
    lowest = best("--value", "min", "--min")
    assert (lowest["winner"]["run_name"], lowest["value"], lowest["direction"]) == ("a", 0.5, "min")
    table = flowscope(workspace, "best", "steps", "--metric", "acc", "--value", "max")
    assert "with acc (max over steps) = 0.95" in table.stdout
    bad = flowscope(workspace, "best", "steps", "--metric", "acc", "--value", "median")
    assert bad.returncode == 1 and "value must be one of last, min, max" in bad.stderr


def test_csv_keeps_numbers_and_neutralises_formulas(workspace: Path) -> None:
    (run_id,) = _seed_runs(
        f"sqlite:///{workspace / 'mlflow.db'}",
        "cells",
        [
            {
                "name": '=HYPERLINK("http://x")',
                "params": {
                    "max_depth": "-1",
                    "learning_rate": "-0.5",
                    "tol": "1e-3",
                    "shift": "+3",
                    "dde": "-1+cmd|' /C calc'!A0",
                    "total": "@SUM(1)",
                },
                "history": {"margin": [-2.5]},
            }
        ],
    )
    listed = flowscope(workspace, "runs", "cells", "-f", "csv")
    assert listed.returncode == 0, listed.stderr
    out = workspace / "cells.csv"
    ranked = flowscope(workspace, "best", "cells", "--metric", "margin", "--csv", str(out))
    assert ranked.returncode == 0, ranked.stderr
    for text in (listed.stdout, out.read_text()):
        (row,) = list(csv.DictReader(io.StringIO(text)))
        assert row["run_id"] == run_id
        assert row["params.max_depth"] == "-1"
        assert row["params.learning_rate"] == "-0.5"
        assert row["params.tol"] == "1e-3"
        assert row["params.shift"] == "+3"
        assert row["metrics.margin"] == "-2.5"
        assert row["run_name"] == '\'=HYPERLINK("http://x")'
        assert row["params.dde"] == "'-1+cmd|' /C calc'!A0"
        assert row["params.total"] == "'@SUM(1)"
