"""Access to the MLflow store for the journal's writer: fast to fail, retried by us.

MLflow's own REST client retries a failed request for minutes with growing pauses, which
would keep delivery asleep long after a tracking server came back. The writer retries on its
own schedule instead, so the store it talks to fails fast: one attempt, a bounded timeout.
Everything else (artifacts, the model registry) goes through ``MlflowClient``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
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

from flowscope.config import Settings
from flowscope.mlflow_client import client_for
from flowscope.tracking import fastpath
from flowscope.tracking.opening import sql_store

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


def _has_ingest(store: Any) -> bool:
    return isinstance(store, _FastFailRestStore) and store.has_ingest()


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

    # -- flowscope server's bulk ingest ---------------------------------------------------

    _ingest: bool | None = None  # None: not asked yet

    def has_ingest(self) -> bool:
        """Whether the server behind the URI is a ``flowscope server`` taking bulk metric
        writes; asked once (an unreachable server is asked again next time)."""
        if self._ingest is None:
            from mlflow.utils.rest_utils import http_request

            response = http_request(
                host_creds=self.get_host_creds(),
                endpoint=INGEST_PATH,
                method="GET",
                max_retries=0,
                timeout=self._timeout,
            )
            if response.status_code >= 500:
                return False  # not an answer: ask again with the next batch
            try:
                found = response.status_code == 200 and response.json().get("ingest") == 1
            except ValueError:
                found = False
            self._ingest = found
        return bool(self._ingest)

    def ingest_metrics(self, run_id: str, metrics: Sequence[Metric]) -> None:
        """Write ``metrics`` through the server's bulk endpoint; MLflow's errors for what it
        refuses (permanent) and a transient one for an unavailable store."""
        from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
        from mlflow.utils.rest_utils import http_request

        body = {"metrics": [_metric_json(metric) for metric in metrics]}
        response = http_request(
            host_creds=self.get_host_creds(),
            endpoint=f"{INGEST_PATH}/runs/{run_id}/metrics",
            method="POST",
            max_retries=0,
            timeout=self._timeout,
            json=body,
        )
        status = response.status_code
        if status == 200:
            return
        try:
            answer = response.json()
        except ValueError:
            answer = None
        # Only the endpoint's own refusal ({"ok": false, ...} with 400 or 404) is about the
        # points, and permanent: a 401, 413 or 429 from a proxy in front, or a 404 from a
        # server that no longer has the endpoint, is retried with the points kept.
        ours = isinstance(answer, dict) and answer.get("ok") is False
        message = str(answer.get("error")) if ours else response.text[:500]
        if ours and status == 404:
            raise MlflowException(message, error_code=RESOURCE_DOES_NOT_EXIST)
        if ours and status == 400:
            raise MlflowException(message, error_code=INVALID_PARAMETER_VALUE)
        if not ours and status in (404, 405):
            self._ingest = None  # ask again: the server behind the URI may have changed
        raise MlflowException(
            f"ingest answered {status}: {message}", error_code=TEMPORARILY_UNAVAILABLE
        )


INGEST_PATH = "/flowscope/api/ingest"


def _metric_json(metric: Metric) -> dict[str, Any]:
    import math

    value: Any = metric.value
    if math.isnan(value):
        value = "NaN"
    elif math.isinf(value):
        value = "Infinity" if value > 0 else "-Infinity"
    return {"key": metric.key, "value": value, "timestamp": metric.timestamp, "step": metric.step}


@lru_cache(maxsize=8)
def _open_tracking_store(uri: str, artifact_root: str, timeout: float) -> AbstractStore:
    scheme = uri.split(":", 1)[0].split("+")[0]
    if scheme in ("http", "https"):
        return _FastFailRestStore(uri, timeout)
    if scheme == "file":
        from mlflow.store.tracking.file_store import FileStore

        return FileStore(uri, artifact_root)
    return sql_store(uri, artifact_root)


@dataclass
class StoreAccess:
    """What the writer needs of MLflow, opened lazily so that an unreachable store only
    surfaces as a failed (and retried) delivery, never as a failed ``start_run``."""

    settings: Settings
    _experiments: dict[str, str] = field(default_factory=dict)

    @cached_property
    def client(self) -> MlflowClient:
        return client_for(self.settings)

    @property
    def store(self) -> AbstractStore:
        return _open_tracking_store(
            self.settings.tracking_uri,
            self.settings.default_artifact_root,
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
        if metrics and (fastpath.supports(store) or _has_ingest(store)):
            self._send_metrics(store, run_id, metrics)
            if params or tags:
                store.log_batch(run_id, metrics=[], params=list(params), tags=list(tags))
            return
        store.log_batch(run_id, metrics=list(metrics), params=list(params), tags=list(tags))

    def _send_metrics(self, store: Any, run_id: str, metrics: Sequence[Metric]) -> None:
        """Metric points by the fastest way the store takes them: the SQL fast path, a
        flowscope server's bulk ingest, or MLflow's ``log_batch``."""
        if fastpath.supports(store):
            fastpath.log_metrics(store, run_id, metrics)
        elif _has_ingest(store):
            store.ingest_metrics(run_id, metrics)
        else:
            store.log_batch(run_id, metrics=list(metrics), params=[], tags=[])

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
        futures = [self._pool.submit(self._send_metrics, store, run_id, batch) for batch in batches]
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
        # by run id alone (hex): a name may hold any quote, and a run has few versions
        for version in client.search_model_versions(f"run_id = '{run_id}'"):
            if version.name == name and version.source == source:
                return str(version.version)
        return str(client.create_model_version(name, source, run_id=run_id).version)
