"""The SDK's round trips, read back with plain MlflowClient on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

import flowscope
from flowscope.errors import FlowscopeError
from tests.conftest import make_settings


@pytest.fixture
def store_settings(tmp_path: Path, store_uri: str) -> flowscope.Settings:
    return make_settings(tmp_path, store_uri)


def _client(settings: flowscope.Settings) -> MlflowClient:
    return MlflowClient(settings.tracking_uri)


def _artifact_json(client: MlflowClient, run_id: str, path: str, tmp_path: Path) -> object:
    return json.loads(Path(client.download_artifacts(run_id, path, str(tmp_path))).read_text())


def test_params_metrics_tags_round_trip(store_settings: flowscope.Settings) -> None:
    with flowscope.start_run("round-trip", run_name="first", settings=store_settings) as run:
        run.log_params({"model": {"depth": 3, "loss": "log"}, "seed": 7})
        run.log_params({"seed": 7})  # the same value again is fine
        for step in range(50):
            run.log_metrics({"loss": 1.0 / (step + 1), "acc": step / 50}, step=step)
        run.set_tags({"team": "vision", "note": "<b>not html</b>"})
    client = _client(store_settings)
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FINISHED"
    assert stored.info.run_name == "first"
    assert stored.data.params == {"model.depth": "3", "model.loss": "log", "seed": "7"}
    assert stored.data.tags["flowscope.kind"] == "training"
    assert stored.data.tags["team"] == "vision"
    assert stored.data.tags["note"] == "<b>not html</b>"
    history = client.get_metric_history(run.run_id, "loss")
    assert sorted((m.step, m.value) for m in history) == [(s, 1.0 / (s + 1)) for s in range(50)]
    experiment = client.get_experiment(stored.info.experiment_id)
    assert experiment.name == "round-trip"


def test_flush_delivers_what_was_logged_while_the_run_goes_on(
    store_settings: flowscope.Settings,
) -> None:
    client = _client(store_settings)
    with flowscope.start_run("flush", settings=store_settings) as run:
        for round_ in range(3):  # each flush sees the points logged just before it
            run.log_metrics({"loss": 1.0 / (round_ + 1)}, step=round_)
            assert run.flush(60), "the points never reached the store"
            history = client.get_metric_history(run.run_id, "loss")
            assert sorted(m.step for m in history) == list(range(round_ + 1))
            assert client.get_run(run.run_id).info.status == "RUNNING"
    assert client.get_run(run.run_id).info.status == "FINISHED"


def test_a_parameter_cannot_change(store_settings: flowscope.Settings) -> None:
    with flowscope.start_run("params", settings=store_settings) as run:
        run.log_params({"depth": 3})
        with pytest.raises(FlowscopeError, match="cannot change"):
            run.log_params({"depth": 4})


def test_inference_runs_go_to_their_own_experiment(store_settings: flowscope.Settings) -> None:
    with flowscope.start_run("churn", kind="inference", settings=store_settings) as run:
        run.log_metrics({"samples": 10})
    client = _client(store_settings)
    stored = client.get_run(run.run_id)
    assert client.get_experiment(stored.info.experiment_id).name == "churn-inference"
    assert stored.data.tags["flowscope.kind"] == "inference"


def test_best_step_summary_and_timers(store_settings: flowscope.Settings, tmp_path: Path) -> None:
    values = [0.5, 0.7, 0.9, 0.85, 0.88]
    with flowscope.start_run(
        "epochs", settings=store_settings, best={"val_accuracy": "max", "val_loss": "min"}
    ) as run:
        for epoch, value in enumerate(values):
            with run.timer("epoch"):
                run.log_metrics({"val_accuracy": value, "val_loss": 1 - value}, step=epoch)
    client = _client(store_settings)
    metrics = client.get_run(run.run_id).data.metrics
    assert metrics["best_val_accuracy"] == 0.9
    assert metrics["best_val_accuracy_step"] == 2
    assert metrics["best_val_loss"] == pytest.approx(0.1)
    assert metrics["best_val_loss_step"] == 2
    assert len(client.get_metric_history(run.run_id, "epoch_time_s")) == len(values)
    report = _artifact_json(client, run.run_id, "runtime/runtime.json", tmp_path)
    assert isinstance(report, dict)
    assert report["timers"]["epoch"]["count"] == len(values)


def test_error_marks_the_run_failed_and_keeps_the_traceback(
    store_settings: flowscope.Settings, tmp_path: Path
) -> None:
    with (
        pytest.raises(ZeroDivisionError),
        flowscope.start_run("failing", settings=store_settings) as run,
    ):
        run.log_metrics({"loss": 1.0})
        _ = 1 / 0
    client = _client(store_settings)
    stored = client.get_run(run.run_id)
    assert stored.info.status == "FAILED"
    assert stored.data.tags["flowscope.error"].startswith("ZeroDivisionError")
    local = client.download_artifacts(run.run_id, "error/traceback.txt", str(tmp_path))
    assert "1 / 0" in Path(local).read_text()


def test_artifacts_dataset_environment_and_model(
    store_settings: flowscope.Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame
    model = LogisticRegression(max_iter=5000).fit(data.data, data.target)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    with flowscope.start_run("artifacts", settings=store_settings, seeds={"numpy": 42}) as run:
        run.log_artifact(note, "notes")
        run.log_dict({"a": 1}, "extra/config.json")
        run.log_environment({"numpy": 42})
        profile = run.log_dataset(frame, "target")
        run.log_model(model, input_example=data.data.head(3), register="cancer-lr")
    client = _client(store_settings)
    paths = {item.path for item in client.list_artifacts(run.run_id)}
    assert {"notes", "extra", "dataset", "environment", "model"} <= paths
    assert (
        Path(client.download_artifacts(run.run_id, "notes/note.txt", str(tmp_path))).read_text()
        == "hello"
    )
    stored = client.get_run(run.run_id)
    assert stored.data.params["seed.numpy"] == "42"
    assert stored.data.params["dataset.rows"] == str(len(frame))
    assert profile["rows"] == len(frame)
    # the dataset is recorded with MLflow's own dataset tracking, as mlflow.log_input does
    inputs = stored.inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "train"
    environment = _artifact_json(client, run.run_id, "environment/environment.json", tmp_path)
    assert isinstance(environment, dict) and environment["seeds"] == {"numpy": 42}
    versions = client.search_model_versions("name = 'cancer-lr'")
    assert [v.run_id for v in versions] == [run.run_id]
    import mlflow.pyfunc

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_settings.tracking_uri)  # models:/ resolves here
    loaded = mlflow.pyfunc.load_model(f"models:/cancer-lr/{versions[0].version}")
    np.testing.assert_array_equal(
        loaded.predict(data.data.head(20)), model.predict(data.data.head(20))
    )


def test_plain_mlflow_sees_runs_and_flowscope_reads_plain_runs(
    store_settings: flowscope.Settings,
) -> None:
    from flowscope.analysis import list_task_runs
    from flowscope.analysis.query import reading_runs

    client = _client(store_settings)
    with flowscope.start_run("shared", run_name="ours", settings=store_settings) as run:
        run.log_metrics({"accuracy": 0.8})
    experiment_id = client.get_run(run.run_id).info.experiment_id
    plain = client.create_run(experiment_id, run_name="plain")
    client.log_metric(plain.info.run_id, "accuracy", 0.9)
    client.set_terminated(plain.info.run_id)
    with reading_runs(store_settings) as store:
        rows = {row["run_name"]: row for row in list_task_runs(store, store_settings, "shared")}
    assert rows["plain"]["kind"] == "training"  # no kind tag counts as training
    assert rows["ours"]["metrics.accuracy"] == 0.8
    assert rows["plain"]["metrics.accuracy"] == 0.9


def test_tracking_off_records_nothing(tmp_path: Path, sqlite_uri: str) -> None:
    settings = make_settings(tmp_path, sqlite_uri, tracking=False)
    with flowscope.start_run("off", settings=settings) as run:
        run.log_metrics({"loss": 1.0})
        run.log_params({"a": 1})
    assert run.run_id is None
    assert not (tmp_path / "journal").exists() or not list((tmp_path / "journal").iterdir())


def test_bad_names_and_values_are_refused(store_settings: flowscope.Settings) -> None:
    with flowscope.start_run("bad", settings=store_settings) as run:
        with pytest.raises(FlowscopeError, match="invalid metric name"):
            run.log_metrics({"loss\n": 1.0})
        with pytest.raises(FlowscopeError, match="must be a number"):
            run.log_metrics({"loss": "high"})
        with pytest.raises(FlowscopeError, match="no such file"):
            run.log_artifact("does-not-exist.txt")
    with pytest.raises(FlowscopeError, match="unknown run kind"):
        flowscope.start_run("bad", kind="serving", settings=store_settings)


def test_evaluation_through_the_sdk(store_settings: flowscope.Settings, tmp_path: Path) -> None:
    from sklearn.metrics import accuracy_score, recall_score

    data = load_breast_cancer()
    model = LogisticRegression(max_iter=5000).fit(data.data[:400], data.target[:400])
    y_true = data.target[400:]
    scores = model.predict_proba(data.data[400:])[:, 1]
    y_pred = (scores >= 0.5).astype(int)
    with flowscope.start_run("eval", settings=store_settings) as run:
        run.log_evaluation(y_true, y_pred, scores, thresholds=[0.5, 0.43, 0.35])
    client = _client(store_settings)
    metrics = client.get_run(run.run_id).data.metrics
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    assert metrics["recall_1"] == pytest.approx(recall_score(y_true, y_pred))
    assert metrics["recall_at_0.35"] == pytest.approx(recall_score(y_true, scores >= 0.35))
    predictions = pd.read_parquet(
        client.download_artifacts(run.run_id, "evaluation/predictions.parquet", str(tmp_path))
    )
    assert len(predictions) == len(y_true)
    names = {item.path for item in client.list_artifacts(run.run_id, "evaluation")}
    assert "evaluation/confusion_matrix.png" in names


def test_unwritable_journal_folder_warns_and_training_goes_on(
    tmp_path: Path, sqlite_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the journal folder should be")
    settings = make_settings(tmp_path, sqlite_uri, journal_dir=blocker / "journal")
    with flowscope.start_run("no-disk", settings=settings) as run:
        run.log_metrics({"loss": 1.0})
    assert "cannot create the journal" in caplog.text
    assert run.run_id is None
