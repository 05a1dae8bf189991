"""One delivery thread for many short runs, several finished runs to a transaction.

A study's trials are hundreds of runs of a few records each. Given a writer thread apiece,
each costs a run creation, a batch or two and an end: four or more store transactions, and
as many threads taking turns at the interpreter lock while the study runs. The courier
delivers them all from one thread instead:

- a run that ends before it has run ``live_after`` seconds is created whole, already ended,
  together with every other such run waiting, in one transaction
  (:func:`flowscope.tracking.fastpath.create_finished_runs`, on SQLite and PostgreSQL);
- a run still going after ``live_after`` seconds, a run whose journal holds more than
  params, metrics and tags (artifacts, models, inputs), and every run on a store without
  that path (a tracking server, a file store) is delivered record by record as its own
  writer would, so a long trial shows in the dashboard while it runs.

Nothing changes on disk: each run still has its own journal, locked by this process, and
``flowscope sync`` delivers what a dead process left, either way. A transaction that
commits and is not followed by the journal's removal is found again by the runs' local
ids, so a replay creates nothing twice.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mlflow.entities import Metric

from flowscope._retry import Backoff
from flowscope.tracking import fastpath
from flowscope.tracking.delivery import Delivery, DeliveryStalled
from flowscope.tracking.journal import Journal, load_state
from flowscope.tracking.store import LOCAL_ID_TAG, PARENT_TAG, StoreAccess, is_permanent
from flowscope.tracking.writer import Follower

logger = logging.getLogger(__name__)

LIVE_AFTER = 2.0  # seconds a run may go on before it is delivered as it goes
MAX_RUNS_PER_TRANSACTION = 100
LINGER = 0.5  # seconds the courier lets ended runs gather after delivering some
_IDLE_WAIT = 0.5
_FIRST_BACKOFF = 0.1
_WHOLE_OPS = {"run", "params", "metrics", "tags", "end"}


class Courier:
    """Delivers the journals handed to it with :meth:`take`, from one daemon thread that
    runs while there is something to deliver."""

    def __init__(
        self,
        access: StoreAccess,
        *,
        live_after: float = LIVE_AFTER,
        linger: float = LINGER,
        max_backoff: float,
    ) -> None:
        self.access = access
        self.live_after = live_after
        self.linger = linger
        self.max_backoff = max_backoff
        self._handles: list[Handle] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._locations: dict[str, str] = {}  # experiment id -> artifact location
        self._released = threading.Event()
        self._released.set()
        atexit.register(self._drain_at_exit)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Deliver nothing until the block ends, then everything at once (a burst of
        runs prepared together; tests use it to make the moment explicit)."""
        self._released.clear()
        try:
            yield
        finally:
            self._released.set()

    def take(self, journal: Journal) -> Handle:
        """Deliver ``journal`` from now on; the handle stands in for the run's writer."""
        handle = Handle(self, journal)
        with self._lock:
            self._handles.append(handle)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="flowscope-courier", daemon=True
                )
                self._thread.start()
        self._wake.set()
        return handle

    def pending(self) -> int:
        """How many of the journals taken are not delivered yet."""
        with self._lock:
            return len(self._handles)

    def wait(self, timeout: float) -> bool:
        """Wait until every journal taken so far is delivered; False if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        with self._lock:
            handles = list(self._handles)
        return all(handle.wait(max(deadline - time.monotonic(), 0.0)) for handle in handles)

    def _drain_at_exit(self) -> None:
        # runs still open were ended by their own exit hooks; give the rest their delivery
        self.wait(self.access.settings.flush_timeout)

    # -- the thread --------------------------------------------------------------------

    def _loop(self) -> None:
        backoff = Backoff(_FIRST_BACKOFF, self.max_backoff)
        while True:
            self._released.wait()
            self._wake.clear()
            with self._lock:
                handles = list(self._handles)
                if not handles:
                    self._thread = None
                    return
            try:
                progress = self._deliver_whole(handles) + self._deliver_live(handles)
            except Exception as exc:
                self._report(exc, handles)
                backoff.pause()
                continue
            if self._failing:
                logger.warning("flowscope: delivery to the tracking store resumed")
                self._failing = False
                for handle in handles:
                    handle.last_error = None
            backoff.reset()
            if not progress:
                self._wake.wait(_IDLE_WAIT)
            else:  # let the runs ending meanwhile gather: one transaction for all of them
                time.sleep(self.linger)

    def _report(self, exc: BaseException, handles: list[Handle]) -> None:
        for handle in handles:
            handle.last_error = f"{type(exc).__name__}: {exc}"
            handle.created.set()
        if not self._failing:
            logger.warning(
                "flowscope: delivery to the tracking store failed (%s); the study goes on, "
                "records are kept in %s and delivery is retried",
                str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__,
                self.access.settings.journal_dir,
            )
        self._failing = True

    def _retire(self, handle: Handle) -> None:
        handle.journal.remove()
        handle.created.set()
        handle.caught_up.set()
        handle.finished.set()
        with self._lock:
            self._handles.remove(handle)

    # -- runs created whole --------------------------------------------------------------

    def _deliver_whole(self, handles: list[Handle]) -> int:
        store = self.access.store
        if not fastpath.supports(store):
            for handle in handles:
                handle.live = True
            return 0
        ready: list[tuple[Handle, fastpath.FinishedRun]] = []
        parents: dict[str, str | None] = {}  # parents looked up in this round
        for handle in handles:
            if handle.live or not handle.ended:
                continue
            whole = self._whole_run(handle, parents)
            if whole is not None:
                ready.append((handle, whole))
            if len(ready) >= MAX_RUNS_PER_TRANSACTION:
                break
        if not ready:
            return 0
        created, existing = fastpath.create_finished_runs(
            store, [run for _, run in ready], local_id_tag=LOCAL_ID_TAG, locations=self._locations
        )
        for handle, run in ready:
            if run.local_id in existing:  # an earlier attempt committed it: replay as usual
                handle.live = True
                handle.delivery.expect_existing()
                continue
            run_id, artifact_uri = created[run.local_id]
            state = handle.delivery.state
            state.run_id, state.artifact_uri = run_id, artifact_uri
            state.experiment_id = run.experiment_id
            self._retire(handle)
        return len(ready)

    def _whole_run(
        self, handle: Handle, parents: dict[str, str | None]
    ) -> fastpath.FinishedRun | None:
        """The run of an ended journal as one :class:`FinishedRun`; None when it must be
        delivered record by record (marked live) or waits for its parent."""
        if handle.records is None:  # an ended journal does not change: read it once
            handle.records = [record for _, record in handle.journal.read(0, complete=False)]
        records = handle.records
        if (
            not records
            or records[0].get("op") != "run"
            or records[0].get("attached_to")
            or records[-1].get("op") != "end"
            or any(record.get("op") not in _WHOLE_OPS for record in records)
        ):
            handle.live = True
            return None
        header = records[0]
        experiment_id = self.access.experiment_id(header["experiment"])
        tags = {key: str(value) for key, value in (header.get("tags") or {}).items()}
        tags[LOCAL_ID_TAG] = handle.journal.local_id
        parent = header.get("parent")
        if parent:
            key = str(parent.get("run_id") or parent.get("local_id"))
            if key not in parents:
                parents[key] = self._parent_run_id(parent)
            parent_run_id = parents[key]
            if parent_run_id is None:
                return None  # the parent is not in the store yet: its run comes first
            tags[PARENT_TAG] = parent_run_id
        params: dict[str, str] = {}
        metrics: list[Metric] = []
        for record in records[1:-1]:
            data = record.get("d", {})
            if record["op"] == "params":
                params.update({key: str(value) for key, value in data.items()})
            elif record["op"] == "tags":
                tags.update({key: str(value) for key, value in data.items()})
            else:
                step, timestamp = int(record.get("s", 0)), int(record["t"])
                metrics.extend(
                    Metric(key, float(value), timestamp, step) for key, value in data.items()
                )
        run = fastpath.FinishedRun(
            local_id=handle.journal.local_id,
            experiment_id=experiment_id,
            run_name=header.get("run_name"),
            user=header.get("user"),
            start_time=int(header["t"]),
            end_time=int(records[-1]["t"]),
            status=str(records[-1]["status"]),
            tags=tags,
            params=params,
            metrics=metrics,
        )
        try:
            fastpath.check_finished_run(run)
        except Exception as exc:
            if not is_permanent(exc):
                raise
            handle.live = True  # record by record: what MLflow refuses is set aside alone
            return None
        return run

    def _parent_run_id(self, parent: dict[str, Any]) -> str | None:
        if parent.get("run_id"):
            return str(parent["run_id"])
        local_id = parent["local_id"]
        with self._lock:
            for handle in self._handles:
                if handle.journal.local_id == local_id:
                    return handle.delivery.run_id
        journal_dir = self.access.settings.journal_dir
        return load_state(journal_dir / f"{local_id}.state").run_id or self._found(local_id)

    def _found(self, local_id: str) -> str | None:
        from mlflow.store.tracking.dbmodels.models import SqlTag

        store: Any = self.access.store  # a SQL store: only used where the fast path is
        with store.ManagedSessionMaker() as session:
            row = (
                session.query(SqlTag.run_uuid)
                .filter(SqlTag.key == LOCAL_ID_TAG, SqlTag.value == local_id)
                .first()
            )
        return None if row is None else str(row[0])

    # -- runs delivered as they go -------------------------------------------------------

    def _deliver_live(self, handles: list[Handle]) -> int:
        now = time.monotonic()
        progress = 0
        for handle in handles:
            if not handle.live and (handle.ended or now - handle.started < self.live_after):
                continue
            handle.live = True
            try:
                delivered = handle.delivery.step(complete=False)
            except DeliveryStalled:
                continue
            if handle.delivery.run_id is not None:
                handle.created.set()
            if handle.delivery.finished:
                self._retire(handle)
            else:
                handle._note_progress()
            progress += delivered
        return progress


class Handle(Follower):
    """What a run sees of its delivery by the courier (the interface of ``Writer``)."""

    def __init__(self, courier: Courier, journal: Journal) -> None:
        self.courier = courier
        self.journal = journal
        self.delivery = Delivery(journal, courier.access, live=True)
        self.created = threading.Event()
        self._follow()
        self.started = time.monotonic()
        self.ended = False
        self.live = False
        self.records: list[dict[str, Any]] | None = None

    def notify(self, *, final: bool = False) -> None:
        if final:
            self.ended = True
        self._appended()
        self.courier._wake.set()
