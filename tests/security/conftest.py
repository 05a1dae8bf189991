"""The hostile-input suite's store, apps and witnesses.

One SQLite store per session is seeded with hostile strings in every field a page renders
(run, experiment and model names, descriptions, params, tags, metric keys, an uploaded
data set's column names and cells, a queued job), through MLflow's client, flowscope's
training and the upload route. Beside it sits a secret file that every traversal aims at.

Each case runs inside :func:`nothing_written`, which compares every table of MLflow's
store and of the job queue, and every file under the store's folder, before and after.
The apps are the dashboard (with the bulk ingest endpoint, as ``flowscope server`` mounts
it) and the prediction service, in process; the browser tests get the real ``flowscope
ui`` process on the same store.
"""

from __future__ import annotations

import hashlib
import io
import sqlite3
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from flowscope.config import Settings
from tests.conftest import make_settings
from tests.security import payloads as p
from tests.servers import FlowscopeServer

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# Caps small enough that an oversize body costs the test little.
UPLOAD_MAX_BYTES = 4 * 1024 * 1024
SERVE_MAX_BODY_BYTES = 256 * 1024
MODEL = p.IMG  # the registered model's name: MLflow refuses "/" and ":" in one
SERVED = "served"  # the same version under a plain name, for ``flowscope serve``
FEATURE = p.SVG_BREAKOUT  # a numeric feature's column name
NOTE = "note"  # a text feature whose cells are formulas
LABELS = (p.FORMULAS["equals"], p.FORMULAS["at"])  # the classes the model predicts
UPLOAD_TARGET = f"{p.SVG_BREAKOUT}label"


@dataclass
class Hostile:
    """The seeded store: where it is and the ids of what it holds."""

    settings: Settings
    root: Path
    secret: Path
    experiment_id: str
    run_ids: list[str]  # training runs, the first one registered
    plain_run_id: str  # written by MLflow's client alone
    dataset_id: str
    job_id: str

    @property
    def experiment_name(self) -> str:
        return p.SCRIPT


def training_frame(rows: int = 120) -> pd.DataFrame:
    """A hostile feature name, negative numbers, formula cells and formula class labels."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            FEATURE: rng.normal(0, 1, rows).round(2),
            "plain": rng.normal(-5, 1, rows).round(2),  # negative numbers stay numbers
            NOTE: rng.choice(list(p.FORMULAS.values()), rows),
        }
    )
    frame["label"] = np.where(frame[FEATURE] > 0, LABELS[0], LABELS[1])
    return frame


def upload_csv() -> bytes:
    """The data set uploaded to the workbench: a script in each column name and cell."""
    rng = np.random.default_rng(1)
    rows = 40
    frame = pd.DataFrame(
        {
            p.SCRIPT: rng.normal(0, 1, rows).round(3),
            p.IMG: rng.choice(list(p.SCRIPTS.values()), rows),
            "formula": rng.choice(list(p.FORMULAS.values()), rows),
            UPLOAD_TARGET: np.repeat(["yes", "no"], rows // 2),
        }
    )
    return frame.to_csv(index=False, lineterminator="\r\n").encode()


def _seed(root: Path) -> Hostile:
    from mlflow import MlflowClient

    from flowscope.jobs import JobQueue, TrainRequest, submit_training
    from flowscope.modeling.train import train
    from flowscope.web import create_app

    settings = make_settings(
        root,
        f"sqlite:///{root / 'mlflow.db'}",
        flush_timeout=30.0,
        workbench_dir=root / "workbench",
        upload_max_bytes=UPLOAD_MAX_BYTES,
        serve_max_body_bytes=SERVE_MAX_BODY_BYTES,
    )
    frame = training_frame()
    run_ids = []
    for trees, name in ((5, p.SVG_BREAKOUT), (9, p.ATTRIBUTE_BREAKOUT)):
        result = train(
            frame,
            "label",
            "random_forest",
            {"n_estimators": trees},
            task=p.SCRIPT,
            run_name=name,
            register=MODEL if not run_ids else None,
            tags={"owner": p.IMG, "homepage": p.JAVASCRIPT_URL, "formula": p.FORMULAS["dde"]},
            settings=settings,
            explain=False,
        )
        assert result.run_id is not None
        run_ids.append(result.run_id)
    client = MlflowClient(settings.tracking_uri)
    client.update_registered_model(MODEL, description=p.SCRIPT + p.JAVASCRIPT_URL)
    client.update_model_version(MODEL, "1", description=p.SVG_BREAKOUT)
    client.set_registered_model_alias(MODEL, "champion", "1")
    client.create_registered_model(SERVED)
    source = client.get_model_version(MODEL, "1").source
    client.create_model_version(SERVED, source, run_id=run_ids[0])
    client.set_registered_model_alias(SERVED, "champion", "1")
    experiment_id = client.get_experiment_by_name(p.SCRIPT).experiment_id

    plain = client.create_run(experiment_id, run_name=p.JAVASCRIPT_URL)
    plain_id = plain.info.run_id
    client.log_param(plain_id, p.JAVASCRIPT_KEY, p.SCRIPT)
    client.log_param(plain_id, "formula", p.FORMULAS["equals"])
    client.log_param(plain_id, "negative", "-1")
    client.log_metric(plain_id, p.JAVASCRIPT_KEY, -1.5)
    client.log_metric(plain_id, "accuracy", 0.5)
    client.set_tag(plain_id, p.JAVASCRIPT_KEY, p.IMG)
    client.set_tag(plain_id, "mlflow.note.content", p.SVG_BREAKOUT)
    client.set_tag(plain_id, "formula", p.FORMULAS["at"])
    client.set_terminated(plain_id)

    with TestClient(create_app(settings)) as web:
        answer = web.post(
            "/api/datasets", files={"file": (f"{p.IMG}.csv", upload_csv(), "text/csv")}
        )
        assert answer.status_code == 201, answer.text
        dataset_id = answer.json()["dataset_id"]
    train_request = TrainRequest(dataset_id, UPLOAD_TARGET, ["random_forest"], task="hostile")
    [job_id] = submit_training(settings, JobQueue(settings), train_request, user=p.IMG)

    secret = root / p.SECRET_NAME
    secret.write_text(p.SECRET_TEXT)
    return Hostile(settings, root, secret, experiment_id, run_ids, plain_id, dataset_id, job_id)


@pytest.fixture(scope="session")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    return _seed(tmp_path_factory.mktemp("hostile"))


# -- witnesses ----------------------------------------------------------------------------


def _tables(database: Path) -> dict[str, str]:
    """Each table's row count and a digest of its rows, in a stable order."""
    if not database.exists():
        return {}
    tables: dict[str, str] = {}
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
        names = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        ]
        for name in sorted(names):
            rows = sorted(repr(row) for row in connection.execute(f'SELECT * FROM "{name}"'))
            digest = hashlib.sha256("\n".join(rows).encode()).hexdigest()[:16]
            tables[name] = f"{len(rows)} rows {digest}"
    connection.close()
    return tables


def _files(root: Path) -> dict[str, int]:
    """Every file under ``root`` with its size, but the SQLite files (their tables are
    compared) and their journals."""
    kept = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.name.endswith((".db", "-journal", "-wal", "-shm")):
            kept[str(path.relative_to(root))] = path.stat().st_size
    return kept


def footprint(hostile: Hostile) -> dict[str, Any]:
    """What a request could have written: MLflow's tables (runs, experiments, registered
    models, versions, params, metrics, tags ...), the job queue's, and every file (staged
    uploads, data sets, saved predictions, artifacts)."""
    return {
        "mlflow": _tables(hostile.root / "mlflow.db"),
        "jobs": _tables(Path(hostile.settings.workbench_dir) / "jobs.db"),
        "files": _files(hostile.root),
    }


@contextmanager
def nothing_written(hostile: Hostile) -> Iterator[None]:
    """The block leaves the store, the queue and the files as it found them."""
    before = footprint(hostile)
    yield
    after = footprint(hostile)
    for part in before:
        assert after[part] == before[part], f"{part} changed: {_diff(before[part], after[part])}"


def _diff(before: dict[str, Any], after: dict[str, Any]) -> str:
    changed = {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()}
    return str({k: v for k, v in changed.items() if v[0] != v[1]})


def assert_refused(answer: Any, *, statuses: tuple[int, ...] = ()) -> None:
    """A 4xx (one of ``statuses`` when given) whose message names a problem, and nothing
    of the secret or the system's files in it."""
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:500])
    if statuses:
        assert answer.status_code in statuses, (answer.status_code, answer.text[:500])
    assert_nothing_leaked(answer)
    if answer.headers.get("content-type", "").startswith("application/json"):
        body = answer.json()
        message = body.get("error") or body.get("message") or ""
        assert isinstance(message, str) and len(message) > 10, body


def assert_nothing_leaked(answer: Any) -> None:
    text = answer.content.decode("utf-8", errors="replace")
    for marker in p.LEAK_MARKERS:
        assert marker not in text, f"{marker!r} leaked in {answer.status_code}"


# -- the apps -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dashboard_app(hostile: Hostile) -> Any:
    """The dashboard with the bulk ingest endpoint, as ``flowscope server`` mounts it; its
    jobs are queued, never run (no consumer), so a queued job is visible as a write."""
    from flowscope.web import create_app

    return create_app(hostile.settings, ingest=True)


@pytest.fixture(scope="session")
def dashboard(dashboard_app: Any) -> Iterator[TestClient]:
    with TestClient(dashboard_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def service_app(hostile: Hostile) -> Any:
    """``flowscope serve served@champion`` without inference runs (a prediction that is
    answered would otherwise be a write)."""
    from flowscope.serving.app import create_serving_app

    return create_serving_app(hostile.settings, f"{SERVED}@champion", monitor=False)


@pytest.fixture(scope="session")
def service(service_app: Any) -> Iterator[TestClient]:
    with TestClient(service_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(scope="session")
def ui_server(hostile: Hostile, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real ``flowscope ui`` process on the hostile store, for Chromium (its log and
    journal outside the store's folder, which the witnesses compare)."""
    server = FlowscopeServer(
        tmp_path_factory.mktemp("ui"),
        hostile.settings.tracking_uri,
        ["ui"],
        health_path="/experiments.json",
        # no job consumer: the queued job stays queued, and the store as the cases left it
        settings={"workbench_dir": str(hostile.settings.workbench_dir), "jobs_embedded": "false"},
        name="dashboard",
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def csv_rows(text: str) -> list[list[str]]:
    import csv

    return list(csv.reader(io.StringIO(text)))


# -- raw requests -------------------------------------------------------------------------


def raw_request(
    client: TestClient,
    method: str,
    raw_path: str,
    *,
    query: str = "",
    headers: dict[str, str] | None = None,
    chunks: tuple[bytes, ...] = (),
    disconnect: bool = False,
) -> httpx.Response:
    """One request handed to ``client``'s app as uvicorn hands it over: the path decoded
    once and never normalised (the test client folds ``..`` and decodes twice), the body in
    ``chunks``; with ``disconnect``, the client goes away after them, as one that declared
    more than it sent does. A response the app never started is a 499 (nothing sent)."""
    from urllib.parse import unquote

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        # as a client sends it: with the Host header the tests' settings answer
        "headers": [
            (k.lower().encode(), v.encode())
            for k, v in {"host": "testserver", **(headers or {})}.items()
        ],
    }
    return client.portal.call(_call, client.app, scope, chunks, disconnect)  # type: ignore[union-attr]


async def _call(
    app: Any, scope: dict[str, Any], chunks: tuple[bytes, ...], disconnect: bool
) -> httpx.Response:
    import anyio

    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1 or disconnect}
        for i, chunk in enumerate(chunks or (b"",))
    ]
    finished = anyio.Event()
    sent: dict[str, Any] = {"status": 499, "headers": [], "body": b""}

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await finished.wait() if not disconnect else None
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"], sent["headers"] = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")
            if not message.get("more_body"):
                finished.set()

    await app(scope, receive, send)
    headers = [(k.decode(), v.decode()) for k, v in sent["headers"]]
    return httpx.Response(sent["status"], headers=headers, content=sent["body"])


# Real Chromium, as the dashboard's own browser tests drive it.
from tests.web.conftest import browser  # noqa: E402, F401
