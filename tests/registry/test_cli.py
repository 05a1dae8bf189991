"""``flowscope promote``, ``retrain`` and ``report`` as a user types them (in process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

import flowscope
from flowscope.config import Settings
from tests.conftest import run_cli as run
from tests.registry.helpers import HEART_POLICY, heart_versions, snapshot


@pytest.fixture
def heart(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The seed scenario, and an environment in which the CLI finds the same store."""
    heart_versions(settings)
    for name, value in {
        "FLOWSCOPE_ARTIFACTS_DIR": str(settings.artifacts_dir),
        "FLOWSCOPE_JOURNAL_DIR": str(settings.journal_dir),
        "FLOWSCOPE_AUTOLOG": "false",
        "FLOWSCOPE_SYNC_ON_START": "false",
        "MLFLOW_TRACKING_URI": settings.tracking_uri,
    }.items():
        monkeypatch.setenv(name, value)
    return settings


def test_promote_dry_run_then_apply_then_no_op(
    heart: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = str(HEART_POLICY)
    before = snapshot(heart)
    code, out, _ = run(capsys, "promote", "heart-disease", "--policy", policy, "--dry-run")
    assert code == 0
    assert "@production: none -> v2; archived v1 (dry run, nothing changed)" in out
    assert snapshot(heart) == before
    code, out, _ = run(capsys, "promote", "heart-disease", "--policy", policy)
    assert code == 0 and "(applied)" in out and "recorded as run" in out
    code, out, _ = run(capsys, "promote", "heart-disease", "--policy", policy, "-f", "json")
    assert code == 0
    result = json.loads(out)
    assert result["outcome"] == "no-op" and result["aliases_after"] == {"production": 2}


def test_errors_are_one_line_and_exit_1(
    heart: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  prod:\n    gates: []\n")
    before = snapshot(heart)
    for args, message in (
        (["promote", "nope", "--policy", str(HEART_POLICY)], "no registered model named 'nope'"),
        (["promote", "heart-disease", "--policy", str(bad)], "stages.prod (line 2): unknown key"),
        (["promote", "heart-disease", "--policy", "missing.yaml"], "no policy file"),
        (["report", "versions", "nope"], "no registered model named 'nope'"),
        (["report", "deployed", "heart-disease", "--data", "iris"], "is not MODEL@ALIAS"),
    ):
        code, _, err = run(capsys, *args)
        assert code == 1, args
        assert err.strip().splitlines() == [f"error: {err.strip()[7:]}"]
        assert message in err
    assert snapshot(heart) == before


def test_reports_write_markdown_and_html(
    heart: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run(capsys, "promote", "heart-disease", "--policy", str(HEART_POLICY))
    code, out, _ = run(capsys, "report", "versions", "heart-disease")
    assert code == 0 and "| Metric | v2 | v1 |" in out
    page = tmp_path / "versions.html"
    code, out, _ = run(capsys, "report", "versions", "heart-disease", "-f", "html", "-o", str(page))
    assert code == 0 and page.read_text().startswith("<!doctype html>")
    rng = np.random.default_rng(3)
    data = pd.DataFrame({"age": rng.normal(55, 9, 40), "chol": rng.normal(240, 40, 40)})
    data.assign(target=(data["age"] > 55).astype(int)).to_csv(tmp_path / "test.csv", index=False)
    deployed = tmp_path / "deployed.html"
    code, out, err = run(
        capsys,
        "report",
        "deployed",
        "heart-disease@production",
        "--data",
        str(tmp_path / "test.csv"),
        "--max-rows",
        "20",
        "-o",
        str(deployed),
    )
    assert code == 0, err
    assert "data:image/png;base64," in deployed.read_text()
    assert MlflowClient(heart.tracking_uri).get_registered_model("heart-disease").aliases == {
        "production": 2
    }


def test_register_a_runs_model_once_and_plain_mlflow_loads_it(
    heart: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    from tests.registry.helpers import tiny_model

    model, example = tiny_model()
    with flowscope.start_run("heart", settings=heart) as trained:
        trained.log_model(model, input_example=example)
    with flowscope.start_run("heart", settings=heart) as bare:
        bare.log_metrics({"accuracy": 0.5})
    run_id = trained.run_id
    code, out, _ = run(capsys, "register", run_id, "heart-new")
    assert code == 0
    assert "as heart-new version 1 (models:/heart-new/1)" in out
    assert "flowscope promote heart-new --policy policy.yaml --version 1" in out
    code, out, _ = run(capsys, "register", run_id, "heart-new", "-f", "json")  # again: the same
    assert code == 0 and json.loads(out)["version"] == 1
    client = MlflowClient(heart.tracking_uri)
    [version] = client.search_model_versions("name = 'heart-new'")
    assert version.run_id == run_id
    loaded = mlflow.pyfunc.load_model("models:/heart-new/1")
    assert list(loaded.predict(example)) == list(model.predict(example))
    before = snapshot(heart)
    for args, message in (
        (["register", "no-such-run", "x"], "no run 'no-such-run' in the store"),
        (["register", str(bare.run_id), "x"], "logged no model at 'model'"),
        (["register", run_id, " "], "name is empty"),
    ):
        code, _, err = run(capsys, *args)
        assert code == 1 and message in err, args
    assert snapshot(heart) == before
