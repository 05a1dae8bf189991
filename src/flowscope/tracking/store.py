"""Opening the MLflow store: the one place a new store is created, and the writer's access.

Every part of flowscope (the SDK, the dashboard, the prediction service, the CLI) opens the
store through :func:`ensure_store` or :func:`mlflow_client`, so a new store is created once,
under a lock, whole or not at all, and every other reader opens an existing, complete one.

MLflow's own REST client retries a failed request for minutes with growing pauses, which
would keep delivery asleep long after a tracking server came back. The writer retries on its
own schedule instead, so the store it talks to fails fast: one attempt, a bounded timeout.
Everything else (artifacts, the model registry) goes through ``MlflowClient``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial
from pathlib import Path
from typing import Any

from mlflow.entities import DatasetInput, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    BAD_REQUEST,
    INVALID_PARAMETER_VALUE,
    INVALID_STATE,
    RESOURCE_ALREADY_EXISTS,
    RESOURCE_DOES_NOT_EXIST,
    ErrorCode,
)
from mlflow.store.tracking.abstract_store import AbstractStore
from mlflow.store.tracking.rest_store import RestStore
from mlflow.tracking import MlflowClient

from flowscope.config import DATABASE_SCHEMES, Settings
from flowscope.tracking import fastpath

logger = logging.getLogger(__name__)

# Errors that retrying cannot mend: the records that cause them are set aside.
_PERMANENT = {
    ErrorCode.Name(code)
    for code in (
        BAD_REQUEST,
        INVALID_PARAMETER_VALUE,
        INVALID_STATE,
        RESOURCE_ALREADY_EXISTS,
        RESOURCE_DOES_NOT_EXIST,
    )
}

LOCAL_ID_TAG = "flowscope.local_id"
PARALLEL_REQUESTS = 4
KIND_TAG = "flowscope.kind"
PARENT_TAG = "mlflow.parentRunId"


def is_permanent(exc: BaseException) -> bool:
    """True when the store refused the request itself, not when it could not be reached.

    MLflow's SQL store reports any SQLAlchemy error but an operational one as a bad
    request, a connection pool that timed out included; that one is transient."""
    if not (isinstance(exc, MlflowException) and exc.error_code in _PERMANENT):
        return False
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    transient = (PoolTimeout, DisconnectionError, InterfaceError, OperationalError)
    return not isinstance(exc.__cause__, transient)


class _FastFailRestStore(RestStore):
    """MLflow's REST store with one attempt per call and a bounded timeout."""

    def __init__(self, uri: str, timeout: float) -> None:
        from mlflow.utils.credentials import get_default_host_creds

        super().__init__(partial(get_default_host_creds, uri))
        self._timeout = timeout

    def _call_endpoint(
        self,
        api: Any,
        json_body: str | None = None,
        endpoint: str | None = None,
        retry_timeout_seconds: float | None = None,
        response_proto: Any = None,
    ) -> Any:
        from mlflow.utils.proto_json_utils import parse_dict
        from mlflow.utils.rest_utils import http_request, verify_rest_response

        method_to_info = self._V3_METHOD_TO_INFO if api in self._V3_APIS else self._METHOD_TO_INFO
        default_endpoint, method = method_to_info[api]
        body = json.loads(json_body) if json_body is not None else None
        payload = {"params": body} if method == "GET" else {"json": body}
        response = http_request(
            host_creds=self.get_host_creds(),
            endpoint=endpoint or default_endpoint,
            method=method,
            max_retries=0,
            timeout=self._timeout,
            **payload,
        )
        response = verify_rest_response(response, endpoint or default_endpoint)
        response_proto = response_proto or api.Response()
        if response.status_code != 204:
            parse_dict(js_dict=json.loads(response.text), message=response_proto)
        return response_proto


# Test-only fault injection. When this variable names a file, creating a new SQLite store
# stops in the middle of MLflow's migrations, writes that file and waits until a file of the
# same name plus ".release" appears (at most ten minutes), so that a test can kill the process,
# or open the store from another one, at exactly that point instead of sleeping and hoping.
# It is an environment variable read only there, not a setting: no user has a reason to set
# it, a setting would be documented in the README and accepted from flowscope.yaml, and an
# unset variable costs one lookup per store created.
TEST_HOLD_CREATION_ENV = "_FLOWSCOPE_TEST_HOLD_STORE_CREATION"
_HOLD_LIMIT = 600.0


def ensure_store(settings: Settings) -> None:
    """Make sure the stores ``settings`` names exist, creating a new one whole.

    Call it before anything opens the store with MLflow's own code (``MlflowClient``, a
    SQLAlchemy engine): MLflow would otherwise run its migrations on a new SQLite file in
    place, and a process killed meanwhile, or a second one opening the same file, would leave
    a half-migrated store that every later open fails on. An existing SQLite store costs one
    ``stat``; a tracking server and a file store need nothing.

        ensure_store(settings)
        engine = sqlalchemy.create_engine(settings.tracking_uri)  # a complete store
    """
    artifact_root = settings.artifacts_dir.as_uri()
    for uri in {settings.tracking_uri, settings.registry_uri or settings.tracking_uri}:
        database = _sqlite_file(uri)
        if database is not None:
            if not _is_created(database):
                with _initialisation_lock(database):
                    _create_sqlite_store(database, artifact_root)
        elif uri.split(":", 1)[0].split("+")[0] in DATABASE_SCHEMES:
            _sql_store(uri, artifact_root)  # MLflow creates a server database's tables


def mlflow_client(settings: Settings) -> MlflowClient:
    """MLflow's client on the stores ``settings`` names, created first if new
    (see :func:`ensure_store`)."""
    ensure_store(settings)
    return MlflowClient(settings.tracking_uri, settings.registry_uri)


@lru_cache(maxsize=8)
def _open_tracking_store(uri: str, artifact_root: str, timeout: float) -> AbstractStore:
    scheme = uri.split(":", 1)[0].split("+")[0]
    if scheme in ("http", "https"):
        return _FastFailRestStore(uri, timeout)
    if scheme == "file":
        from mlflow.store.tracking.file_store import FileStore

        return FileStore(uri, artifact_root)
    return _sql_store(uri, artifact_root)


@lru_cache(maxsize=8)
def _sql_store(uri: str, artifact_root: str) -> AbstractStore:
    """MLflow's SQL store on ``uri``, a new SQLite file created whole first. Other databases
    run each migration in a transaction and MLflow locks their creation itself."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    database = _sqlite_file(uri)
    if database is not None and not _is_created(database):
        with _initialisation_lock(database):
            _create_sqlite_store(database, artifact_root)
    return SqlAlchemyStore(uri, artifact_root)


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:///:memory:"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def _is_created(database: Path) -> bool:
    """Whether the SQLite store is there. It only ever appears whole (linked in by
    :func:`_create_sqlite_store`), so a file with content is a complete store."""
    try:
        return database.stat().st_size > 0
    except FileNotFoundError:
        return False


@contextmanager
def _initialisation_lock(database: Path) -> Iterator[None]:
    """Serialise the creation of one SQLite file across processes.

    Opening a new SQLite store creates its tables with Alembic migrations; two processes
    doing so at once collide on Alembic's temporary tables and leave the file unusable.
    Other databases lock their own DDL, so only SQLite needs this.
    """
    database.parent.mkdir(parents=True, exist_ok=True)
    lock = database.with_name(database.name + ".flowscope-lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _create_sqlite_store(database: Path, artifact_root: str) -> None:
    """Create a new SQLite store whole or not at all (the initialisation lock is held).

    MLflow creates its tables by running dozens of migrations, and SQLite commits each
    schema change as it goes: a process killed meanwhile (a training script stopped in its
    first seconds) would leave a file that every later open fails on ("table ... already
    exists"). So the tables are made in a file beside it, which is then linked into place.
    """
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for leftover in database.parent.glob(f".{database.name}.*.creating*"):
        leftover.unlink(missing_ok=True)  # killed while creating: only we may create now
    if _is_created(database):
        return
    draft = database.with_name(f".{database.name}.{os.getpid()}.creating")
    try:
        with _held_mid_migrations_for_tests(draft):
            SqlAlchemyStore(f"sqlite:///{draft}", artifact_root).engine.dispose()
        try:
            os.link(draft, database)  # never over a store that appeared meanwhile
        except FileExistsError:
            if database.stat().st_size == 0:  # an empty file that SQLite opened: no store yet
                os.replace(draft, database)
    finally:
        draft.unlink(missing_ok=True)


@contextmanager
def _held_mid_migrations_for_tests(draft: Path) -> Iterator[None]:
    """Stop the migrations of ``draft`` after their first step when a test asks for it
    (:data:`TEST_HOLD_CREATION_ENV`); nothing at all otherwise."""
    marker = os.environ.get(TEST_HOLD_CREATION_ENV)
    if not marker:
        yield
        return
    import sqlalchemy as sa

    held = False

    def hold(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        nonlocal held
        # Alembic records each applied migration: the first record means the first one is
        # in and the rest are to come
        if held or conn.engine.url.database != str(draft) or "alembic_version" not in statement:
            return
        if not statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            return
        held = True
        Path(marker).write_text(f"{os.getpid()}\n")
        release = Path(f"{marker}.release")
        deadline = time.monotonic() + _HOLD_LIMIT
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.01)

    sa.event.listen(sa.engine.Engine, "after_cursor_execute", hold)
    try:
        yield
    finally:
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", hold)


@dataclass
class StoreAccess:
    """What the writer needs of MLflow, opened lazily so that an unreachable store only
    surfaces as a failed (and retried) delivery, never as a failed ``start_run``."""

    settings: Settings
    _experiments: dict[str, str] = field(default_factory=dict)

    @cached_property
    def client(self) -> MlflowClient:
        return mlflow_client(self.settings)

    @property
    def store(self) -> AbstractStore:
        return _open_tracking_store(
            self.settings.tracking_uri,
            self.settings.artifacts_dir.as_uri(),
            self.settings.request_timeout,
        )

    def experiment_id(self, name: str) -> str:
        """The id of the experiment called ``name``, created when missing."""
        cached = self._experiments.get(name)
        if cached is not None:
            return cached
        store = self.store
        experiment = store.get_experiment_by_name(name)
        if experiment is None:
            try:
                experiment_id = store.create_experiment(name, None, [])
            except MlflowException as exc:  # another process created it first
                if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                    raise
                experiment = store.get_experiment_by_name(name)
                if experiment is None:
                    raise
                experiment_id = experiment.experiment_id
        elif experiment.lifecycle_stage == "deleted":
            raise MlflowException(
                f"experiment {name!r} is deleted; restore it or use another task name",
                error_code=INVALID_STATE,
            )
        else:
            experiment_id = experiment.experiment_id
        self._experiments[name] = experiment_id
        return experiment_id

    def find_run(self, experiment_id: str, local_id: str) -> Any | None:
        """The run an earlier attempt created for this journal, if any (replays create none)."""
        runs = self.store.search_runs(
            experiment_ids=[experiment_id],
            filter_string=f"tags.`{LOCAL_ID_TAG}` = '{local_id}'",
            run_view_type=3,  # ViewType.ALL: a replay must find a run even if deleted
            max_results=1,
        )
        return runs[0] if runs else None

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None,
        start_time: int,
        tags: dict[str, str],
        user: str | None,
    ) -> Any:
        return self.store.create_run(
            experiment_id=experiment_id,
            user_id=user or "unknown",
            start_time=start_time,
            tags=[RunTag(key, str(value)) for key, value in tags.items()],
            run_name=run_name,
        )

    def log_batch(
        self,
        run_id: str,
        metrics: Sequence[Metric],
        params: Sequence[Param],
        tags: Sequence[RunTag],
    ) -> None:
        store = self.store
        if metrics and fastpath.supports(store):
            fastpath.log_metrics(store, run_id, metrics)
            if params or tags:
                store.log_batch(run_id, metrics=[], params=list(params), tags=list(tags))
            return
        store.log_batch(run_id, metrics=list(metrics), params=list(params), tags=list(tags))

    @property
    def parallel_requests(self) -> int:
        """How many ``log_batch`` requests may be in flight at once: a tracking server
        serves them in parallel worker processes; a database store takes one at a time."""
        return PARALLEL_REQUESTS if isinstance(self.store, RestStore) else 1

    @cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(PARALLEL_REQUESTS, thread_name_prefix="flowscope-send")

    def log_metric_batches(
        self, run_id: str, batches: Sequence[Sequence[Metric]]
    ) -> list[BaseException | None]:
        """Send several metric batches at once; the error of each, None where it went."""
        store = self.store
        futures = [
            self._pool.submit(store.log_batch, run_id, metrics=list(batch), params=[], tags=[])
            for batch in batches
        ]
        return [future.exception() for future in futures]

    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput]) -> None:
        self.store.log_inputs(run_id, datasets=list(datasets))

    def end_run(self, run_id: str, status: str, end_time: int) -> None:
        from mlflow.entities import RunStatus

        self.store.update_run_info(run_id, RunStatus.from_string(status), end_time, None)

    def log_artifacts(self, run_id: str, local_path: Path, artifact_path: str | None) -> None:
        if local_path.is_dir():
            self.client.log_artifacts(run_id, str(local_path), artifact_path)
        else:
            self.client.log_artifact(run_id, str(local_path), artifact_path)

    def register_model(self, name: str, source: str, run_id: str) -> str:
        """Register the model at ``source`` as a new version of ``name``, once.

        A replay finds the version it created before (same run and source) instead of
        adding another.
        """
        client = self.client
        try:
            client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
                raise
        for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
            if version.source == source:
                return str(version.version)
        return str(client.create_model_version(name, source, run_id=run_id).version)
