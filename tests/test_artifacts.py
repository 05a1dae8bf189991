"""Reading a run's artifacts back through one helper, against a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from flowscope.artifacts import (
    ArtifactUnavailableError,
    downloaded,
    read_json_artifact,
    read_text_artifact,
)
from flowscope.config import Settings
from flowscope.errors import NotFoundError
from flowscope.mlflow_client import client_for


@pytest.fixture
def logged(settings: Settings, tmp_path: Path) -> tuple[MlflowClient, str]:
    client = client_for(settings)
    experiment = client.create_experiment("a", artifact_location=(tmp_path / "art").as_uri())
    run_id = client.create_run(experiment).info.run_id
    client.log_dict(run_id, {"accuracy": 0.9, "labels": [0, 1]}, "evaluation/metrics.json")
    client.log_text(run_id, "not json {", "evaluation/notes.json")
    client.log_text(run_id, "flavors: {}\n", "model/MLmodel")
    client.log_text(run_id, "weights", "model/model.skops")
    return client, run_id


def test_a_download_lives_for_the_block(logged: tuple[MlflowClient, str]) -> None:
    client, run_id = logged
    with downloaded(client, run_id, "model") as folder:
        assert sorted(p.name for p in folder.iterdir()) == ["MLmodel", "model.skops"]
        assert (folder / "model.skops").read_text() == "weights"
    assert not folder.exists()
    with downloaded(client, run_id, "evaluation/metrics.json") as file:
        assert file.is_file() and file.name == "metrics.json"
    assert not file.parent.exists()


def test_a_missing_artifact_is_a_not_found_error_naming_it(
    logged: tuple[MlflowClient, str],
) -> None:
    client, run_id = logged
    missing = f"'explain/summary.json' of run {run_id}"
    with (
        pytest.raises(ArtifactUnavailableError, match=missing),
        downloaded(client, run_id, "explain/summary.json"),
    ):
        pytest.fail("the block must not run")
    assert issubclass(ArtifactUnavailableError, NotFoundError)


def test_readers_answer_none_for_what_is_absent_or_unreadable(
    logged: tuple[MlflowClient, str],
) -> None:
    client, run_id = logged
    assert read_json_artifact(client, run_id, "evaluation/metrics.json") == {
        "accuracy": 0.9,
        "labels": [0, 1],
    }
    assert read_json_artifact(client, run_id, "evaluation/notes.json") is None
    assert read_json_artifact(client, run_id, "evaluation/absent.json") is None
    assert read_text_artifact(client, run_id, "model/MLmodel") == "flavors: {}\n"
    assert read_text_artifact(client, run_id, "nothing/here") is None

