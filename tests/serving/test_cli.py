"""``flowscope predict`` and ``flowscope serve`` as a user runs them."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from flowscope.serving.server import _HANDOVER, app_from_environment
from tests.conftest import run_cli
from tests.servers import FlowscopeServer
from tests.serving.conftest import Registry, inference_runs, iris_features, records


def test_predict_a_file_logs_one_batch_run(
    registry: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = registry.fresh("random_forest")
    X = iris_features()
    labelled = X.assign(species=registry.pipeline("random_forest").predict(X))
    source = tmp_path / "flowers.csv"
    labelled.to_csv(source, index=False)  # with the target column: scored as it is
    output = tmp_path / "preds.csv"
    uri = registry.settings.tracking_uri
    code, out, err = run_cli(
        capsys,
        "predict",
        f"{name}@champion",
        "--input",
        str(source),
        "--output",
        str(output),
        "--tracking-uri",
        uri,
    )
    assert code == 0, err
    assert f"predicted 150 rows with {name} version 1" in out and "inference run" in out
    table = pd.read_csv(output)
    pipeline = registry.pipeline("random_forest")
    assert table["prediction"].tolist() == list(pipeline.predict(X))
    assert table["species"].tolist() == table["prediction"].tolist()
    probabilities = table[[f"proba_{c}" for c in pipeline.classes_]].to_numpy()
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(X), rtol=1e-9)
    (run,) = inference_runs(registry.settings, name)
    assert run.data.params["prediction_type"] == "batch"
    assert run.data.params["input_file"] == "flowers.csv"
    assert run.data.metrics["samples"] == 150


def test_predict_one_json_record_and_errors(
    registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    name = registry.fresh("lightgbm")
    uri = registry.settings.tracking_uri
    record = records(iris_features().head(1))[0]
    code, out, err = run_cli(
        capsys, "predict", f"{name}/1", "--json", json.dumps(record), "--tracking-uri", uri
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["version"] == "1" and answer["predictions"][0]["prediction"] == "setosa"
    assert len(inference_runs(registry.settings, name)) == 1
    for args, message in (
        (["--json", "{not json"], "not valid JSON"),
        (["--json", json.dumps({**record, "extra": 1})], "unknown column 'extra'"),
        (["--input", "nowhere.csv"], "file not found"),
    ):
        code, out, err = run_cli(capsys, "predict", f"{name}/1", *args, "--tracking-uri", uri)
        assert code == 1 and message in err and "Traceback" not in err
    code, _, err = run_cli(
        capsys, "predict", "no-such-model@x", "--json", "{}", "--tracking-uri", uri
    )
    assert code == 1 and err.strip() == "error: no model version no-such-model@x in the registry"
    code, _, err = run_cli(capsys, "predict", f"{name}/1", "--tracking-uri", uri)
    assert code == 1 and "give either --input FILE or --json RECORD" in err


@pytest.mark.slow
def test_the_real_serve_process(registry: Registry, tmp_path: Path) -> None:
    name = registry.fresh("random_forest")
    server = FlowscopeServer(
        tmp_path,
        registry.settings.tracking_uri,
        ["serve", f"{name}@champion"],
        health_path="/health",
        settings={"autolog": "false"},
        name="flowscope-serve",
    )
    server.start()
    try:
        rows = records(iris_features().head(10))
        answer = httpx.post(f"{server.url}/predict", json=rows, timeout=30)
        invocation = httpx.post(f"{server.url}/invocations", json={"inputs": rows}, timeout=30)
        bad = httpx.post(
            f"{server.url}/predict",
            content=b"{",
            timeout=30,
            headers={"Content-Type": "application/json"},
        )
    finally:
        code = server.terminate()  # a graceful stop writes the open window
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
    assert answer.status_code == 200 and answer.json()["version"] == "1"
    assert invocation.json() == {"predictions": ["setosa"] * 10}
    assert bad.status_code == 400
    (run,) = inference_runs(registry.settings, name)
    assert run.data.metrics["samples"] == 20 and run.data.metrics["errors"] == 1


def test_workers_get_the_model_and_settings_handed_over(
    registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = registry.fresh("random_forest")
    handover = {
        "model": f"{name}/1",
        "host": "127.0.0.1",
        "settings": registry.settings.model_dump(mode="json"),
    }
    monkeypatch.setenv(_HANDOVER, json.dumps(handover))
    app = app_from_environment()  # built, never started: its lifespan does not run
    assert app.state.service.holder.current.name == name
    assert app.state.service.settings.tracking_uri == registry.settings.tracking_uri
