"""``flowscope serve`` as MLflow's own scoring clients see it: ``/ping``, ``/version`` and
``/invocations`` answer as ``mlflow models serve`` does for the same model, bad input gets
MLflow's error shape with a message naming the problem, and every prediction made through
``/invocations`` reaches the inference monitor exactly once."""

from __future__ import annotations

import json
import re
import signal
import threading
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.pyfunc.scoring_server.client import ScoringServerClient
from mlflow.utils.proto_json_utils import dump_input_data

from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import train
from flowscope.serving import create_serving_app
from tests.servers import FlowscopeServer
from tests.serving.conftest import (
    LiveServer,
    Registry,
    inference_runs,
    iris_features,
    records,
    synthetic_frame,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

JSON_TYPE = "application/json"
JSON = {"Content-Type": JSON_TYPE}
CSV = {"Content-Type": "text/csv"}
SECRET = "4111-1111-1111-1111"


def load_pyfunc(registry: Registry, name: str) -> Any:
    """``mlflow.pyfunc.load_model("models:/NAME@champion")`` on the test store."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", registry.settings.tracking_uri)
        return mlflow.pyfunc.load_model(f"models:/{name}@champion")


class Served:
    """One registered model served two ways, in process: by flowscope and by MLflow's own
    scoring app (what ``mlflow models serve`` runs) over ``mlflow.pyfunc.load_model``."""

    def __init__(self, registry: Registry, kind: str, frame: pd.DataFrame) -> None:
        self.registry = registry
        self.name = registry.fresh(kind)
        self.frame = frame
        self.pyfunc = load_pyfunc(registry, self.name)

    def expected(self, frame: pd.DataFrame) -> dict[str, Any]:
        """What MLflow's pyfunc predicts for ``frame``, as ``/invocations`` answers it."""
        return {"predictions": np.asarray(self.pyfunc.predict(frame)).tolist()}

    def apps(self, patch: pytest.MonkeyPatch) -> tuple[TestClient, TestClient]:
        """Test clients of flowscope's app and of MLflow's (which marks the process as a
        serving environment; ``patch`` undoes that)."""
        from mlflow.pyfunc.scoring_server import init

        patch.delenv("_MLFLOW_IS_IN_SERVING_ENVIRONMENT", raising=False)
        settings = self.registry.using(monitor=False)
        ours = create_serving_app(settings, f"{self.name}@champion")
        return TestClient(ours), TestClient(init(self.pyfunc), raise_server_exceptions=False)


@pytest.fixture(scope="module")
def served(registry: Registry) -> dict[str, Served]:
    diabetes, target = load_builtin("diabetes")
    ridge = train(diabetes, target, "ridge", task="diabetes-scoring", settings=registry.settings)
    assert ridge.run_id is not None
    registry.run_ids["ridge"] = ridge.run_id
    synth = synthetic_frame(200, seed=3).drop(columns=["label"]).head(40)
    return {
        "iris": Served(registry, "random_forest", iris_features()),
        "synthetic": Served(registry, "synthetic", synth),
        "regression": Served(registry, "ridge", diabetes.drop(columns=[target]).head(40)),
    }


def _bodies(frame: pd.DataFrame) -> dict[str, tuple[str, dict[str, str]]]:
    """The same rows in every form ``/invocations`` takes."""
    rows = records(frame)
    columns = {name: [row[name] for row in rows] for name in frame.columns}
    return {
        "MLflow client (dataframe_split)": (dump_input_data(frame), JSON),
        "with params": (dump_input_data(frame, params={"temperature": 0.5}), JSON),
        "dataframe_records": (json.dumps({"dataframe_records": rows}), JSON),
        "instances": (json.dumps({"instances": rows}), JSON),
        "inputs as records": (json.dumps({"inputs": rows}), JSON),
        "inputs as columns": (json.dumps({"inputs": columns}), JSON),
        "charset given": (dump_input_data(frame), {"Content-Type": f"{JSON_TYPE}; charset=utf-8"}),
        "CSV": (frame.to_csv(index=False), CSV),
    }


@pytest.mark.parametrize("model", ["iris", "synthetic", "regression"])
def test_every_format_answers_what_mlflow_models_serve_answers(
    served: dict[str, Served], model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    subject = served[model]
    expected = subject.expected(subject.frame)
    ours, theirs = subject.apps(monkeypatch)
    with ours, theirs:
        for form, (body, headers) in _bodies(subject.frame).items():
            answer = ours.post("/invocations", content=body, headers=headers)
            mlflow_answer = theirs.post("/invocations", content=body, headers=headers)
            assert answer.status_code == 200, (form, answer.text)
            assert mlflow_answer.status_code == 200, (form, mlflow_answer.text)
            assert answer.json() == mlflow_answer.json() == expected, form
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["x-model-version"] == "1"


def test_csv_text_columns_stay_text(
    served: dict[str, Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A category coded as digits is text to the model, as MLflow reads it from CSV."""
    subject = served["synthetic"]
    frame = subject.frame.head(3).assign(region=["1", "2", "3"])
    ours, theirs = subject.apps(monkeypatch)
    with ours, theirs:
        answer = ours.post("/invocations", content=frame.to_csv(index=False), headers=CSV)
        mlflow_answer = theirs.post("/invocations", content=frame.to_csv(index=False), headers=CSV)
    assert answer.status_code == 200, answer.text
    assert answer.json() == mlflow_answer.json() == subject.expected(frame)


def test_columns_outside_the_signature_are_dropped_as_mlflow_drops_them(
    served: dict[str, Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole rows of the training table, an id column beside them, answer as the features
    alone do, from either server; flowscope's own ``/predict`` still names the column."""
    subject = served["iris"]
    frame = subject.frame.head(5)
    wider = frame.assign(row_id=range(5), species=["setosa"] * 5)
    expected = subject.expected(frame)
    ours, theirs = subject.apps(monkeypatch)
    with ours, theirs:
        for body, headers in (
            (dump_input_data(wider), JSON),
            (wider.to_csv(index=False), CSV),
        ):
            answer = ours.post("/invocations", content=body, headers=headers)
            mlflow_answer = theirs.post("/invocations", content=body, headers=headers)
            assert answer.status_code == mlflow_answer.status_code == 200, answer.text
            assert answer.json() == mlflow_answer.json() == expected
        refused = ours.post("/predict", json=records(wider))
    assert refused.status_code == 422
    assert "unknown column 'row_id'" in refused.json()["error"]


def test_ping_and_version_answer_as_mlflow_does(
    served: dict[str, Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = served["iris"].apps(monkeypatch)
    with ours, theirs:
        for path in ("/ping", "/version"):
            answer, mlflow_answer = ours.get(path), theirs.get(path)
            assert answer.status_code == mlflow_answer.status_code == 200
            assert answer.text == mlflow_answer.text
            assert answer.headers["content-type"] == mlflow_answer.headers["content-type"]
        assert ours.get("/version").text == mlflow.__version__
        assert ours.get("/health").status_code == 200


# Bad input, what flowscope answers (status, error code, a fragment of the message) and
# what MLflow's own server answers for it (None: MLflow serves it, or fails with a 500).
GOOD = records(synthetic_frame(5).drop(columns=["label"]))[0]


def _one(**changes: Any) -> bytes:
    return json.dumps({"dataframe_records": [{**GOOD, **changes}]}).encode()


BAD = [
    (
        "missing column",
        json.dumps({"inputs": [{k: v for k, v in GOOD.items() if k != "x3"}]}).encode(),
        JSON,
        400,
        "missing column 'x3'",
        400,
    ),
    ("text in a number column", _one(x1=SECRET), JSON, 400, "column 'x1' expects numbers", 400),
    ("number in a text column", _one(region=7), JSON, 400, "column 'region' expects text", None),
    ("malformed JSON", b'{"dataframe_split": ', JSON, 400, "not valid JSON", 400),
    ("a JSON list", json.dumps([GOOD]).encode(), JSON, 400, "JSON object", 400),
    ("no format key", json.dumps(GOOD).encode(), JSON, 400, "dataframe_split", 400),
    (
        "two format keys",
        json.dumps({"instances": [GOOD], "inputs": [GOOD]}).encode(),
        JSON,
        400,
        "exactly one",
        400,
    ),
    (
        "split rows of another width",
        json.dumps({"dataframe_split": {"columns": list(GOOD), "data": [[1, 2]]}}).encode(),
        JSON,
        400,
        "list of 7 values",
        400,
    ),
    ("unnamed instances", b'{"instances": [[1, 2, 3]]}', JSON, 400, "name its columns", 400),
    (
        "params not an object",
        json.dumps({"inputs": [GOOD], "params": [SECRET]}).encode(),
        JSON,
        400,
        "params must be a JSON object",
        None,
    ),
    ("empty body", b"", JSON, 400, "empty", 400),
    ("unsupported content type", b"x0\n1\n", {"Content-Type": "text/xml"}, 415, "'text/xml'", 415),
    ("no content type", _one(), {}, 415, "content type 'none'", None),
    (
        "latin-1 charset",
        _one(),
        {"Content-Type": "application/json; charset=latin-1"},
        415,
        "UTF-8",
        415,
    ),
    ("CSV missing columns", b"x0,x1\n1,2\n", CSV, 400, "missing column 'x2'", 400),
    (
        "CSV text in a number column",
        ("x0,x1,x2,x3,x4,region,member\n1,2,3,4," + SECRET + ",north,True\n").encode(),
        CSV,
        400,
        "column 'x4' expects numbers",
        400,
    ),
]


@pytest.fixture(scope="module")
def synthetic_apps(served: dict[str, Served]) -> Iterator[tuple[TestClient, TestClient]]:
    with pytest.MonkeyPatch.context() as patch:
        ours, theirs = served["synthetic"].apps(patch)
        with ours, theirs:
            yield ours, theirs


@pytest.mark.parametrize(
    ("body", "headers", "status", "fragment", "mlflow_status"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_input_gets_mlflows_error_shape_and_names_the_problem(
    synthetic_apps: tuple[TestClient, TestClient],
    body: bytes,
    headers: dict[str, str],
    status: int,
    fragment: str,
    mlflow_status: int | None,
) -> None:
    ours, theirs = synthetic_apps
    answer = ours.post("/invocations", content=body, headers=headers)
    assert answer.status_code == status, answer.text
    error = answer.json()
    assert set(error) == {"error_code", "message"} and error["error_code"] == "BAD_REQUEST"
    assert fragment in error["message"]
    assert SECRET not in answer.text and "Traceback" not in answer.text
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])
    if mlflow_status is not None:
        assert theirs.post("/invocations", content=body, headers=headers).status_code == (
            mlflow_status
        )
    good = ours.post("/invocations", content=_one(), headers=JSON)
    assert good.status_code == 200  # still serving


def test_ping_answers_while_every_prediction_slot_is_taken(registry: Registry) -> None:
    """``/ping`` goes past admission: a health check never fails because the service is
    busy, and ``/invocations`` then says so in MLflow's shape."""
    name = registry.fresh("random_forest")
    settings = registry.using(serve_max_concurrency=1, monitor=False)
    release = threading.Event()
    held: dict[str, httpx.Response] = {}

    def slow_body() -> Iterator[bytes]:
        yield b'{"inputs": '
        release.wait(30)
        yield json.dumps(records(iris_features().head(1))).encode() + b"}"

    app = create_serving_app(settings, f"{name}@champion")
    admitted = threading.Event()
    app.state.service.on_admit = admitted.set
    with (
        LiveServer(app) as server,
        httpx.Client(base_url=server.url, timeout=30) as http,
    ):

        def hold_the_slot() -> None:
            held["answer"] = http.post("/invocations", content=slow_body(), headers=JSON)

        holder = threading.Thread(target=hold_the_slot)
        holder.start()
        try:
            assert admitted.wait(30), "the slow request was never admitted"
            assert "flowscope_requests_in_flight 1" in http.get("/metrics").text
            ping = http.get("/ping")
            busy = http.post("/invocations", json={"inputs": records(iris_features().head(1))})
        finally:
            release.set()
            holder.join(30)
    assert ping.status_code == 200 and ping.text == "\n"
    assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
    assert busy.json() == {
        "error_code": "TEMPORARILY_UNAVAILABLE",
        "message": "the service is at its concurrency limit; retry",
    }
    assert held["answer"].status_code == 200
    assert held["answer"].json() == {"predictions": ["setosa"]}


def _logged_inputs(registry: Registry, runs: list[Any], folder: Path) -> Counter[tuple]:
    client = MlflowClient(registry.settings.tracking_uri)
    logged: Counter[tuple] = Counter()
    for run in runs:
        if not run.data.metrics.get("samples"):
            continue
        local = client.download_artifacts(
            run.info.run_id, "predictions/predictions.parquet", str(folder / run.info.run_id)
        )
        table = pd.read_parquet(local)[list(iris_features().columns)]
        logged.update(map(tuple, table.itertuples(index=False)))
    return logged


@pytest.mark.slow
def test_mlflows_scoring_client_against_a_real_flowscope_serve(
    registry: Registry, tmp_path: Path
) -> None:
    """MLflow's ``ScoringServerClient`` waits for the server and scores with it as with
    ``mlflow models serve``; the monitor records each of its predictions exactly once."""
    name = registry.fresh("random_forest")
    server = FlowscopeServer(
        tmp_path,
        registry.settings.tracking_uri,
        ["serve", f"{name}@champion"],
        health_path="/ping",
        settings={"autolog": "false", "monitor_window_seconds": "3600"},
        name="flowscope-serve",
    )
    X = iris_features()
    frames = [X, X.sample(20, random_state=1), X.iloc[[0, 50, 100]]]
    pyfunc = load_pyfunc(registry, name)
    server.start()
    try:
        client = ScoringServerClient("127.0.0.1", server.port)
        client.wait_server_ready(timeout=60, scoring_server_proc=server.process)
        version = client.get_version()
        answers = [client.invoke(frame) for frame in frames]
        with_params = client.invoke(frames[1], params={"temperature": 0.5})
        with pytest.raises(Exception, match=r"error code 400.*missing column 'petal_width_cm'"):
            client.invoke(X.drop(columns=["petal_width_cm"]).head(2))
    finally:
        code = server.terminate()  # a graceful stop writes the open window
    assert code in (0, -signal.SIGTERM)
    assert version == mlflow.__version__
    for frame, answer in zip(frames, answers, strict=True):
        assert answer["predictions"] == np.asarray(pyfunc.predict(frame)).tolist()
        assert answer.get_predictions().iloc[:, 0].tolist() == answer["predictions"]
    assert with_params == answers[1]
    sent = [*frames, frames[1]]
    (run,) = inference_runs(registry.settings, name)
    assert run.data.metrics["samples"] == sum(len(frame) for frame in sent)
    assert run.data.metrics["requests"] == len(sent)
    assert run.data.metrics["errors"] == 1
    expected = Counter(row for frame in sent for row in map(tuple, frame.itertuples(index=False)))
    assert _logged_inputs(registry, [run], tmp_path) == expected
