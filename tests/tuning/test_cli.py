"""``flowscope tune`` as a user runs it on the catalog and the built-in data sets."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from flowscope.cli import main
from flowscope.config import load_settings
from tests.tuning.conftest import metric_steps, study_runs

SMALL_XGBOOST = """\
max_depth: {type: int, low: 2, high: 4}
learning_rate: {type: float, low: 0.05, high: 0.5, log: true}
n_estimators: {type: int, low: 10, high: 40}
"""


def flowscope(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    # an absolute store: MLflow caches stores by URI, and each test has its own folder
    store = f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    with pytest.raises(SystemExit) as exited:
        main([*args, "--tracking-uri", store])
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out, captured.err


@pytest.mark.slow
def test_tune_records_the_study_and_refits_registers_the_best(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "space.yaml").write_text(SMALL_XGBOOST)
    code, out, err = flowscope(
        capsys,
        "tune", "--dataset", "iris", "--model", "xgboost", "--trials", "6", "--n-jobs", "2",
        "--space", "space.yaml", "--metric", "accuracy", "--register", "flowers",
    )  # fmt: skip
    assert code == 0, err
    settings = load_settings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent, trials = study_runs(settings, "iris")
    assert f"study iris-xgboost (run {parent.info.run_id}): 6 trials" in out
    assert len(trials) == 6
    assert parent.data.params["model_type"] == "xgboost"
    assert parent.data.params["space.max_depth"] == "int 2..4"
    for run in trials:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status in ("FINISHED", "KILLED")
        rounds = metric_steps(settings, run.info.run_id, "intermediate_accuracy")
        assert rounds, "every trial reports its rounds"
        if run.info.status == "FINISHED":
            # the value after the last round is the trial's value: one metric, one scale
            assert rounds[max(rounds)] == run.data.metrics["accuracy"]
            assert max(rounds) == int(run.data.params["n_estimators"]) - 1

    client = MlflowClient(settings.tracking_uri)
    refits = [
        run
        for run in client.search_runs([parent.info.experiment_id])
        if run.data.tags.get("flowscope.kind") == "training"
    ]
    assert len(refits) == 1
    refit = refits[0]
    best_number = int(parent.data.tags["flowscope.best_trial"])
    assert refit.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert refit.data.tags["flowscope.trial_number"] == str(best_number)
    assert refit.data.params["model.max_depth"] == trials[best_number].data.params["max_depth"]
    assert "accuracy" in refit.data.metrics and "f1" in refit.data.metrics
    (version,) = client.search_model_versions("name = 'flowers'")
    assert version.run_id == refit.info.run_id
    assert version.tags["flowscope.study"] == "iris-xgboost"
    assert version.tags["flowscope.trial_number"] == str(best_number)


BAD_SPACE = {
    "unknown.yaml": ("max_depth: {type: int, low: 2, high: 4}\nwings: {type: int, low: 1, "
                     "high: 2}\n", "unknown parameter 'wings' for xgboost in unknown.yaml"),
    "inverted.yaml": ("max_depth: {type: int, low: 9, high: 4}\n",
                      "parameter 'max_depth' in inverted.yaml: the range 9..4 is inverted"),
    "empty.yaml": ("learning_rate: {type: float, low: 0.1, high: 0.1}\n",
                   "parameter 'learning_rate' in empty.yaml: the range 0.1..0.1 is empty"),
}  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "tree_of_life"], "unknown model type 'tree_of_life'"),
        (["--model", "knn", "--metric", "rmse"], "metric 'rmse' is not one the evaluation of a "
         "multiclass problem produces; use one of: accuracy"),
        (["--model", "knn", "--direction", "min"], "--direction min contradicts metric accuracy"),
        (["--model", "knn", "--storage", "postgresql+psycopg://postgres@127.0.0.1:9/none"],
         "cannot open the study storage: the database is unreachable"),
        (["--model", "knn", "--sampler", "grid"], "unknown sampler 'grid'"),
        *[(["--model", "xgboost", "--space", name], message)
          for name, (_, message) in BAD_SPACE.items()],
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_leaves_no_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], message: str
) -> None:
    for name, (text, _) in BAD_SPACE.items():
        (tmp_path / name).write_text(text)
    code, _, err = flowscope(capsys, "tune", "--dataset", "iris", "--trials", "2", *args)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert message in err
    store = tmp_path / "mlflow.db"
    if store.exists():
        client = MlflowClient(f"sqlite:///{store}")
        experiments = [e.experiment_id for e in client.search_experiments()]
        assert not client.search_runs(experiments)


def test_a_direction_against_the_existing_study_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    common = ["tune", "--dataset", "iris", "--model", "knn", "--study", "flowers"]
    code, _, err = flowscope(capsys, *common, "--trials", "2", "--metric", "accuracy")
    assert code == 0, err
    code, _, err = flowscope(capsys, *common, "--trials", "4", "--metric", "log_loss")
    assert code == 1
    assert err == (
        f"error: study 'flowers' in sqlite:///{tmp_path / 'optuna.db'} is set to maximize; "
        "direction minimize contradicts it (use another study name)\n"
    )
    parent, trials = study_runs(
        load_settings(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"), "iris"
    )
    assert parent.info.status == "FINISHED" and len(trials) == 2


@pytest.mark.slow
def test_workers_share_the_default_sqlite_study(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Two worker processes of two threads each on SQLite beside the store: the study's
    total exactly, one parent, no "database is locked"."""
    code, out, err = flowscope(
        capsys,
        "tune", "--dataset", "iris", "--model", "knn", "--trials", "10",
        "--workers", "2", "--n-jobs", "2", "--sampler", "random",
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "optuna.db").exists()
    settings = load_settings(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    parent, trials = study_runs(settings, "iris")
    assert [int(run.data.tags["flowscope.trial_number"]) for run in trials] == list(range(10))
    assert {run.data.tags["mlflow.parentRunId"] for run in trials} == {parent.info.run_id}
    assert {run.info.status for run in trials} == {"FINISHED"}
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["trials_complete"] == 10
    assert "10 trials, 10 complete" in out
