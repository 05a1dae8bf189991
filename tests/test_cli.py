"""The ``flowscope`` command as a user runs it: a real process, a real store."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow import MlflowClient


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
