"""Predictions from the dashboard: the JSON API in ``flowscope serve``'s formats, the
``/models/NAME/predict`` page, their inference runs, bad input, and formula-safe CSV."""

from __future__ import annotations

import csv
import io
import re
import warnings
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from flowscope.serving.cache import ModelCache, version_ref
from flowscope.web import create_app
from tests.leaks import assert_no_leak
from tests.serving.conftest import inference_runs, records
from tests.web.churn import FEATURES, MODEL, TARGET, Churn

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow
ROW_KEYS = {"prediction", "class_name", "confidence", "probabilities"}
ANSWER_KEYS = {"ok", "model", "version", "request_id", "latency_ms", "predictions"}


@pytest.fixture(scope="module")
def dashboard(churn: Churn) -> Iterator[TestClient]:
    with TestClient(create_app(churn.settings), raise_server_exceptions=False) as client:
        yield client


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _expected(churn: Churn, frame: pd.DataFrame) -> tuple[list[Any], np.ndarray]:
    """What plain MLflow answers for ``frame`` (labels), and the model's probabilities."""
    uri = MlflowClient(churn.settings.tracking_uri).get_model_version_download_uri(MODEL, "1")
    labels = mlflow.pyfunc.load_model(uri).predict(frame[FEATURES])
    return list(labels), churn.pipeline.predict_proba(frame[FEATURES])


def test_api_predict_answers_as_serve_does_and_equals_the_model(
    churn: Churn, dashboard: TestClient
) -> None:
    rows = churn.frame.iloc[:25]
    body = records(rows[FEATURES].astype(object).where(rows[FEATURES].notna(), None))
    assert any(row["tenure"] is None for row in body) and any(r["region"] is None for r in body)

    answer = dashboard.post(f"/api/models/{MODEL}/1/predict", json=body)

    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert set(data) >= ANSWER_KEYS and data["ok"] and data["version"] == "1"
    assert answer.headers["x-model-version"] == "1" and answer.headers["x-request-id"]
    labels, probabilities = _expected(churn, rows)
    assert [row["prediction"] for row in data["predictions"]] == labels
    for row, expected in zip(data["predictions"], probabilities, strict=True):
        assert set(row) == ROW_KEYS and row["class_name"] == row["prediction"]
        assert [row["probabilities"][c] for c in ("no", "yes")] == pytest.approx(expected)
        assert row["confidence"] == pytest.approx(expected.max())
    one = dashboard.post(f"/api/models/{MODEL}/@champion/predict", json=body[0]).json()
    assert one["predictions"] == data["predictions"][:1]


def test_api_batch_json_and_csv_and_the_inference_runs(churn: Churn, dashboard: TestClient) -> None:
    rows = churn.frame.iloc[100:160].copy()  # with the label: kept in the output, not an input
    rows.iloc[0, rows.columns.get_loc("region")] = "@SUM(1)"  # a category never seen
    before = {run.info.run_id for run in inference_runs(churn.settings, MODEL, "churn")}
    files = {"file": ("scored.csv", _csv_bytes(rows), "text/csv")}

    as_json = dashboard.post(f"/api/models/{MODEL}/@champion/predict/batch", files=files)
    as_csv = dashboard.post(f"/api/models/{MODEL}/1/predict/batch?format=csv", files=files)
    by_accept = dashboard.post(
        f"/api/models/{MODEL}/1/predict/batch?filename=raw.csv",
        content=_csv_bytes(rows[FEATURES]),
        headers={"Content-Type": "text/csv", "Accept": "text/csv"},
    )

    assert as_json.status_code == 200, as_json.text
    assert set(as_json.json()) >= ANSWER_KEYS
    labels, probabilities = _expected(churn, rows)
    assert [row["prediction"] for row in as_json.json()["predictions"]] == labels
    table = pd.read_csv(io.StringIO(as_csv.text))
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert list(table.columns) == [
        *rows.columns,
        "prediction",
        "confidence",
        "proba_no",
        "proba_yes",
    ]
    assert table["prediction"].tolist() == labels
    assert table["proba_yes"].to_numpy() == pytest.approx(probabilities[:, 1])
    assert table["spend"].tolist() == rows["spend"].tolist()  # numbers intact
    assert table[TARGET].tolist() == rows[TARGET].tolist()
    assert pd.read_csv(io.StringIO(by_accept.text))["prediction"].tolist() == labels

    made = [
        r for r in inference_runs(churn.settings, MODEL, "churn") if r.info.run_id not in before
    ]
    assert sorted(r.data.params["prediction_type"] for r in made) == ["batch"] * 3
    assert {r.data.params.get("input_file") for r in made} == {"scored.csv", "raw.csv"}
    assert {r.data.tags["flowscope.kind"] for r in made} == {"inference"}
    assert all(r.data.metrics["samples"] == len(rows) for r in made)
    tab = dashboard.get(f"/models/{MODEL}/inference.json").json()
    shown = {w["run_id"]: w["type"] for w in tab["windows"]}
    assert all(shown[r.info.run_id] == "batch" for r in made)
    # the batch run's predictions.csv artifact opens safely in a spreadsheet too
    client = MlflowClient(churn.settings.tracking_uri)
    logged = Path(client.download_artifacts(made[0].info.run_id, "predictions/predictions.csv"))
    artifact = pd.read_csv(logged)
    assert artifact["region"].iloc[0] == "'@SUM(1)" and artifact["prediction"].tolist() == labels


def test_the_page_form_predicts_one_record_and_logs_a_single_run(
    churn: Churn, dashboard: TestClient
) -> None:
    data = dashboard.get(f"/models/{MODEL}/predict.json").json()
    assert data["ok"] and data["ref"] == "@champion" and data["version"] == "1"
    fields = {field["name"]: field for field in data["fields"]}
    assert list(fields) == FEATURES
    assert fields["plan"]["input"] == "select" and set(fields["plan"]["choices"]) == {
        "basic",
        "plus",
        "pro",
    }
    assert fields["spend"]["required"] and not fields["tenure"]["required"]
    assert fields["tenure"]["input"] == "number"
    html = dashboard.get(f"/models/{MODEL}/predict")
    assert html.status_code == 200 and 'id="single-form"' in html.text
    assert html.headers["link"].startswith(f"</models/{MODEL}/predict.json>")
    assert f'href="/models/{MODEL}/predict"' in dashboard.get(f"/models/{MODEL}").text

    form = {"tenure": "", "spend": "80.5", "plan": "basic", "region": "north"}
    answer = dashboard.post(f"/models/{MODEL}/predict.json?ref=1", data=form)
    page = dashboard.post(f"/models/{MODEL}/predict?ref=%40champion", data=form)

    assert answer.status_code == 200, answer.text
    single = answer.json()["single"]
    frame = pd.DataFrame([{"tenure": np.nan, "spend": 80.5, "plan": "basic", "region": "north"}])
    probabilities = churn.pipeline.predict_proba(frame)[0]
    row = single["predictions"][0]
    assert row["probabilities"] == pytest.approx(
        dict(zip(["no", "yes"], probabilities, strict=True))
    )
    assert row["class_name"] == ["no", "yes"][int(probabilities.argmax())]
    assert page.status_code == 200
    shown = re.search(r'id="predicted-class">([^<]+)<', page.text)
    assert shown is not None and shown.group(1) == row["class_name"]
    run = next(
        r
        for r in inference_runs(churn.settings, MODEL, "churn")
        if r.info.run_id == single["run_id"]
    )
    assert run.data.params["prediction_type"] == "single"
    tab = dashboard.get(f"/models/{MODEL}/inference.json").json()
    assert {w["run_id"]: w["type"] for w in tab["windows"]}[single["run_id"]] == "single"


def test_the_page_batch_upload_shows_rows_and_downloads_formula_safe_csv(
    churn: Churn, dashboard: TestClient
) -> None:
    rows = churn.frame.iloc[200:240].copy()
    rows[TARGET] = rows[TARGET].astype(object)
    rows.iloc[0, rows.columns.get_loc(TARGET)] = '=HYPERLINK("x")'
    files = {"file": ("hostile.csv", _csv_bytes(rows), "text/csv")}

    data = dashboard.post(f"/models/{MODEL}/predict/batch.json?ref=1", files=files).json()
    html = dashboard.post(f"/models/{MODEL}/predict/batch?ref=1", files=files)

    batch = data["batch"]
    assert batch["rows"] == 40 and len(batch["head"]) == 20 and batch["filename"] == "hostile.csv"
    assert batch["columns"][-4:] == ["prediction", "confidence", "proba_no", "proba_yes"]
    assert html.status_code == 200 and 'id="batch-rows"' in html.text
    download = dashboard.get(batch["download"])
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert 'filename="predictions-hostile.csv"' in download.headers["content-disposition"]
    lines = list(csv.DictReader(io.StringIO(download.text)))
    assert len(lines) == 40
    assert lines[0][TARGET] == '\'=HYPERLINK("x")'
    assert [float(line["spend"]) for line in lines] == rows["spend"].tolist()
    assert any(line["spend"].startswith("-") for line in lines) or rows["spend"].min() >= 0
    labels, _ = _expected(churn, rows)
    assert [line["prediction"] for line in lines] == labels
    assert dashboard.get(f"/models/{MODEL}/predict/download/{'0' * 32}").status_code == 404
    assert dashboard.get(f"/models/{MODEL}/predict/download/..%2F..%2Fx").status_code == 404


def test_bad_inputs_get_a_4xx_naming_the_problem(churn: Churn, dashboard: TestClient) -> None:
    good = {"tenure": 3.0, "spend": 10.0, "plan": "pro", "region": "east"}
    api = f"/api/models/{MODEL}/1/predict"

    unknown_model = dashboard.post("/api/models/nope/1/predict", json=good)
    unknown_version = dashboard.post(f"/api/models/{MODEL}/9/predict", json=good)
    unknown_alias = dashboard.post(f"/api/models/{MODEL}/@gone/predict", json=good)
    bad_json = dashboard.post(api, content=b"{", headers={"Content-Type": "application/json"})
    missing = dashboard.post(api, json={k: v for k, v in good.items() if k != "spend"})
    wrong = dashboard.post(api, json={**good, "spend": "a lot"})
    text = churn.frame[FEATURES].iloc[:5].astype(object)
    text.iloc[2, 1] = "a lot"
    upload = dashboard.post(
        f"/api/models/{MODEL}/1/predict/batch",
        files={"file": ("rows.csv", _csv_bytes(text), "text/csv")},
    )
    empty = dashboard.post(
        f"/api/models/{MODEL}/1/predict/batch", files={"file": ("e.csv", b"", "text/csv")}
    )
    page_wrong = dashboard.post(
        f"/models/{MODEL}/predict?ref=1",
        data={**{k: str(v) for k, v in good.items()}, "spend": "x"},
    )
    page_missing = dashboard.post(
        f"/models/{MODEL}/predict/batch?ref=1",
        files={"file": ("rows.csv", _csv_bytes(text.drop(columns=["plan"])), "text/csv")},
    )
    unknown_page = dashboard.get("/models/nope/predict")

    for response, status, words in [
        (unknown_model, 404, "nope"),
        (unknown_version, 404, f"{MODEL}/9"),
        (unknown_alias, 404, f"{MODEL}@gone"),
        (bad_json, 400, "not valid JSON"),
        (missing, 422, "missing column 'spend'"),
        (wrong, 422, "column 'spend' expects numbers"),
        (upload, 422, "column 'spend' expects numbers"),
        (empty, 400, "empty"),
    ]:
        assert response.status_code == status, response.text
        assert response.json()["ok"] is False and words in response.json()["error"]
    assert page_wrong.status_code == 422 and 'id="predict-error"' in page_wrong.text
    assert "column &#39;spend&#39; expects numbers" in page_wrong.text
    assert page_missing.status_code == 422 and "missing column &#39;plan&#39;" in page_missing.text
    assert unknown_page.status_code == 404


def test_the_cache_loads_a_version_once_and_stays_bounded(churn: Churn) -> None:
    cache = ModelCache(churn.settings, size=1)
    by_alias = cache.get(version_ref(MODEL, "@champion"))
    by_number = cache.get(version_ref(MODEL, "1"))
    assert by_alias.pipeline is by_number.pipeline and len(cache) == 1
    assert by_alias.alias == "champion" and by_number.alias is None


def test_the_cache_loads_a_version_once_for_concurrent_requests(churn: Churn) -> None:
    cache = ModelCache(churn.settings)
    ref = version_ref(MODEL, "@champion")
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(lambda _: cache.get(ref), range(4)))
    assert len({id(model.pipeline) for model in loaded}) == 1 and len(cache) == 1


def test_an_xlsx_upload_and_a_regression_model(churn: Churn, tmp_path: Path) -> None:
    from flowscope.modeling.data import load_builtin
    from flowscope.modeling.train import train

    frame, target = load_builtin("diabetes")
    train(frame, target, "ridge", task="progress", register="progress", settings=churn.settings)
    rows = churn.frame.iloc[:12]
    workbook = tmp_path / "rows.xlsx"
    rows.to_excel(workbook, index=False)
    with TestClient(create_app(churn.settings), raise_server_exceptions=False) as client:
        xlsx = client.post(
            f"/api/models/{MODEL}/1/predict/batch",
            files={"file": ("rows.xlsx", workbook.read_bytes(), "application/octet-stream")},
        )
        fields = client.get("/models/progress/predict.json").json()["fields"]
        form = {field["name"]: field["value"] for field in fields}
        answer = client.post("/models/progress/predict.json", data=form).json()
        page = client.post("/models/progress/predict", data=form)
    assert xlsx.status_code == 200, xlsx.text
    assert [p["prediction"] for p in xlsx.json()["predictions"]] == _expected(churn, rows)[0]
    row = answer["single"]["predictions"][0]
    assert row["confidence"] is None and row["probabilities"] is None
    assert answer["problem"] == "regression" and answer["ref"] == "1"
    assert all(field["input"] == "number" and field["value"] for field in fields)
    assert 'id="predicted-value"' in page.text and page.status_code == 200
    record = pd.DataFrame([{name: float(value) for name, value in form.items()}])
    uri = MlflowClient(churn.settings.tracking_uri).get_model_version_download_uri("progress", "1")
    assert row["prediction"] == pytest.approx(mlflow.pyfunc.load_model(uri).predict(record)[0])


def test_a_broken_workbook_to_predict_names_the_upload_not_the_servers_folder(
    churn: Churn,
) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("notes.txt", "not a workbook")
    sent = {"file": ("rows.xlsx", archive.getvalue(), "application/octet-stream")}
    with TestClient(create_app(churn.settings), raise_server_exceptions=False) as client:
        answers = [
            client.post(f"/api/models/{MODEL}/1/predict/batch", files=sent),
            client.post(f"/models/{MODEL}/predict/batch", files=sent),
        ]
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert "cannot read rows.xlsx as an Excel workbook" in answer.text
        assert_no_leak(answer.text, churn.settings.workbench_dir, churn.settings.tracking_uri)
