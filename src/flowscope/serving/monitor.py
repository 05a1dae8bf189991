"""The inference monitor: every prediction kept, written as inference runs off the request
path.

The request path only appends an :class:`~.packing.Observation` to an in-memory window (a
lock and a list append). A background thread closes the window when its time is up or it
holds ``monitor_window_size`` predictions, and hands it to a sink that writes one
inference run per model version in it to ``<task>-inference``: by default a helper
process (:mod:`~.helper`), else the thread itself (:mod:`~.writers`); a batch upload gets
a run of its own. Runs go through flowscope's journal, so once a window is written a
store outage loses none of it: the journal's writers deliver when the store is back, or
``flowscope sync`` does later.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowscope.serving.packing import Observation, packed
from flowscope.serving.summary import metric_key, summarise

if TYPE_CHECKING:
    from flowscope.config import Settings
    from flowscope.serving.model import ServedModel
    from flowscope.serving.packing import Packed
    from flowscope.tracking.journal import Journal
    from flowscope.tracking.run import Run

logger = logging.getLogger(__name__)

MODEL_TAG = "flowscope.model_name"
VERSION_TAG = "flowscope.model_version"
TYPE_TAG = "flowscope.prediction_type"
WINDOW_TAG = "flowscope.window_id"
# JSON of {class key in count_<class>: class name}, where training named the classes.
CLASS_NAMES_TAG = "flowscope.class_names"
_TAG_LIMIT = 5000  # characters of a tag value every MLflow store keeps
# The longest the writer thread sleeps between looks at the sink's answers.
_POLL = 0.5
# Bytes of distinct values past which a parquet column gives up dictionary encoding
# (Arrow: 1 MiB). Served numeric inputs are mostly distinct, and a window's 100,000 rows
# fit under 1 MiB: each column was encoded against a dictionary as large as itself, which
# took 197 ms and 33 MB against 37 ms and 27 MB; repeated values still get a dictionary.
_DICTIONARY_PAGE = 16 * 1024


@dataclass
class _Group:
    """The predictions of one model version in the open window."""

    model: ServedModel
    observations: list[Observation] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0  # predictions left out of the window for lack of room
    packed: list[Packed] = field(default_factory=list)  # observations packed before

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.observations) + sum(p.total for p in self.packed)


@dataclass
class _Job:
    groups: list[_Group]
    start: float
    end: float
    kind: str = "single"
    filename: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    resent: bool = False  # sent again to a new helper after the one before died

    @property
    def rows(self) -> int:
        return sum(group.rows for group in self.groups)


class InferenceMonitor:
    """Buffers predictions and writes inference runs in a background thread.

    >>> monitor = InferenceMonitor(settings)          # doctest: +SKIP
    >>> monitor.observe(model, observation)           # on the request path: an append
    >>> monitor.close()                               # writes what is left
    """

    def __init__(self, settings: Settings) -> None:
        from flowscope.serving.helper import HelperSink
        from flowscope.serving.writers import ThreadSink

        self.settings = settings
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._groups: dict[str, _Group] = {}
        self._rows = 0
        self._jobs: list[_Job] = []
        self._window_start = time.time()
        self._buffered = 0
        self._closing = False
        self._deadline = 0.0  # monotonic, set by close()
        self._delivered = False
        self._cpu_seconds = 0.0  # the monitor thread's own CPU time, for /metrics
        self.dropped = 0
        sink = HelperSink if settings.monitor_process else ThreadSink
        self._sink = sink(settings, self._written)
        self._thread = threading.Thread(target=self._loop, name="flowscope-monitor", daemon=True)
        self._thread.start()

    # -- the request path --------------------------------------------------------------

    def observe(self, model: ServedModel, observation: Observation) -> None:
        """Record one answered request; a window or per-request run is written later."""
        rows = observation.rows
        with self._lock:
            if self._buffered + rows > self.settings.monitor_max_buffered or self._closing:
                self._drop(model, rows)
                return
            self._buffered += rows
            if self.settings.monitor_per_request:
                now = time.time()
                group = _Group(model, [observation])
                self._jobs.append(_Job([group], observation.timestamp, now))
                self._wake.set()
                return
            self._group(model).observations.append(observation)
            self._rows += rows
            if self._rows >= self.settings.monitor_window_size:
                self._close_window()

    def observe_error(self, model: ServedModel) -> None:
        """Count a refused or failed request in the open window."""
        with self._lock:
            self._group(model).errors += 1

    def observe_batch(self, model: ServedModel, observation: Observation, filename: str) -> None:
        """Record a batch upload: it gets an inference run of its own."""
        with self._lock:
            if self._buffered + observation.rows > self.settings.monitor_max_buffered:
                self._drop(model, observation.rows)
                return
            self._buffered += observation.rows
            group = _Group(model, [observation])
            self._jobs.append(_Job([group], observation.timestamp, time.time(), "batch", filename))
        self._wake.set()

    def _group(self, model: ServedModel) -> _Group:
        group = self._groups.get(model.version)
        if group is None:
            group = self._groups[model.version] = _Group(model)
        return group

    def _drop(self, model: ServedModel, rows: int) -> None:
        """Count predictions there is no room for (the lock is held); the window's run
        reports them as ``dropped``."""
        self.dropped += rows
        if self.dropped == rows:
            logger.warning(
                "flowscope: the inference monitor holds %d predictions, its limit; further "
                "ones are counted as dropped (monitor_max_buffered)",
                self._buffered,
            )
        if not self._closing:
            self._group(model).dropped += rows

    # -- the writer thread -------------------------------------------------------------

    def _close_window(self) -> None:
        """Hand the open window to the writer (the lock is held)."""
        now = time.time()
        groups = [
            g for g in self._groups.values() if g.observations or g.packed or g.errors or g.dropped
        ]
        if groups:
            self._jobs.append(_Job(groups, self._window_start, now))
        self._groups = {}
        self._rows = 0
        self._window_start = now
        self._wake.set()

    def _loop(self) -> None:
        """The monitor's thread: the only one that touches the sink, its end included."""
        while True:
            deadline = self._window_start + self.settings.monitor_window_seconds
            self._wake.wait(min(max(deadline - time.time(), 0.0), _POLL))
            self._wake.clear()
            with self._lock:
                if time.time() >= deadline or self._closing:
                    self._close_window()
                jobs, self._jobs = self._jobs, []
                closing = self._closing
            for job in jobs:
                try:
                    self._sink.submit(job)
                except Exception:  # a monitor must never take the service down
                    logger.exception("flowscope: could not hand over inference window %s", job.id)
            if closing:
                self._delivered = self._sink.close(self._deadline)
                return
            try:
                self._pack()
                self._sink.poll()
            except Exception:
                logger.exception("flowscope: the inference monitor's upkeep failed")
            self._cpu_seconds = time.thread_time()

    def _pack(self) -> None:
        """Pack the open window's new observations (see :mod:`~.packing`)."""
        from flowscope.serving.packing import pack

        with self._lock:
            for group in self._groups.values():
                if group.observations:
                    group.packed.append(pack(group.model, group.observations))
                    group.observations = []

    def _written(self, rows: int) -> None:
        """The sink is done with a window of ``rows`` predictions: they leave the buffer."""
        with self._lock:
            self._buffered -= rows

    # -- ending ------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> bool:
        """Write what is buffered and wait, at most ``timeout`` seconds (``flush_timeout``),
        until every inference run is delivered; False when some are left to the journal."""
        wait = self.settings.flush_timeout if timeout is None else timeout
        with self._lock:
            self._deadline = time.monotonic() + wait
            self._closing = True
        self._wake.set()
        # the thread hands over the last window and ends the sink, within the deadline
        # (and the few seconds a helper process is given to exit)
        self._thread.join(max(wait, 1.0) + 15.0)
        return self._delivered and not self._thread.is_alive()

    @property
    def helper_pid(self) -> int | None:
        """The helper process writing the windows (None when they are written here)."""
        return getattr(self._sink, "pid", None)

    def stats(self) -> dict[str, float]:
        """Counters for ``/metrics``; ``cpu_seconds`` is what the monitor's thread has
        spent of the serving process's CPU (packing, handing windows over)."""
        return {
            "buffered_predictions": self._buffered,
            "dropped_predictions": self.dropped,
            "cpu_seconds": self._cpu_seconds,
            **self._sink.stats(),
        }


def log_predictions(
    settings: Settings,
    model: ServedModel,
    observations: list[Observation],
    *,
    kind: str = "batch",
    filename: str | None = None,
) -> Run:
    """Log ``observations`` of ``model`` as one inference run now (what ``flowscope
    predict`` does), waiting up to ``flush_timeout`` for its delivery."""
    start = min((o.timestamp for o in observations), default=time.time())
    job = _Job([], start, time.time(), kind, filename)
    run = write_inference_run(settings, _Group(model, observations), job)
    run.end()
    return run


def write_inference_run(
    settings: Settings,
    group: _Group,
    job: _Job,
    local_id: str | None = None,
    resume: Journal | None = None,
) -> Run:
    """Write one inference run for ``group`` (a model version's predictions in a window
    or batch) into the journal named ``local_id``; the caller ends it.

    ``resume`` is that journal as a writer before this one left it: the run goes on in it,
    the records already there are not written again (the same window gives the same
    records, in the same order)."""
    from flowscope.tracking.run import start_run

    model = group.model
    started = _iso(job.start)
    params: dict[str, Any] = {
        "model_name": model.name,
        "model_version": model.version,
        "model_alias": model.alias or "",
        "window_start": started,
        "window_end": _iso(job.end),
        "prediction_type": job.kind,
    }
    if job.filename is not None:
        params["input_file"] = job.filename
    tags = {
        MODEL_TAG: model.name,
        VERSION_TAG: model.version,
        TYPE_TAG: job.kind,
        "flowscope.model_alias": model.alias or "",
        "flowscope.source_run": model.run_id or "",
    }
    if local_id is not None:
        tags[WINDOW_TAG] = local_id
    names = {metric_key(label): model.name_of(label) for label in model.classes or []}
    if any(key != name for key, name in names.items()):
        text = json.dumps(names)
        if len(text) <= _TAG_LIMIT:  # names too long for a tag are left to the model
            tags[CLASS_NAMES_TAG] = text
    run_name = f"{model.name}-v{model.version}-{job.kind}-{started.replace(':', '')}"
    if resume is None:
        run = start_run(
            model.task,
            run_name,
            kind="inference",
            params=params,
            tags=tags,
            settings=settings,
            local_id=local_id,
        )
    else:
        from flowscope.serving.writers import resumed_run

        run = resumed_run(settings, model.task, resume)
        run.log_params(params)
    try:
        window = packed(group)
        if window.request_ids:
            table, metrics, scores = summarise(
                model,
                window,
                errors=group.errors,
                dropped=group.dropped,
                drift_threshold=settings.drift_threshold,
                drift_min_samples=settings.drift_min_samples,
            )
            run.log_metrics(metrics, timestamp=int(job.end * 1000))
            _log_predictions_files(run, table, csv=job.kind == "batch")
            if scores:
                run.log_dict(_drift_report(model, scores, settings), "drift/drift.json")
        else:
            empty = {"samples": 0.0, "requests": 0.0, "errors": float(group.errors)}
            run.log_metrics(
                {**empty, **({"dropped": float(group.dropped)} if group.dropped else {})}
            )
    except BaseException as exc:
        run.log_error(exc)
        run.end("FAILED", timeout=0.0)
        raise
    return run


def _log_predictions_files(run: Run, table: Any, *, csv: bool) -> None:
    """The predictions as ``predictions/predictions.parquet`` (and ``.csv`` for a batch),
    written by the run straight into its journal."""
    run.log_table(_ArrowTable(table), "predictions/predictions.parquet")
    if csv:
        run.log_table(table.to_pandas(), "predictions/predictions.csv")


class _ArrowTable:
    """An Arrow table that ``Run.log_table`` can write as parquet like a DataFrame, so a
    window's table is neither converted to pandas nor copied once more."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def to_parquet(self, path: Any, index: bool = False) -> None:
        import pyarrow.parquet as pq

        pq.write_table(self.table, path, dictionary_pagesize_limit=_DICTIONARY_PAGE)


def _drift_report(model: ServedModel, scores: dict[str, float], settings: Settings) -> dict:
    threshold = settings.drift_threshold
    return {
        "threshold": threshold,
        "reference_run": model.run_id,
        "features": {
            name: {"psi": value, "drifted": value > threshold}
            for name, value in sorted(scores.items(), key=lambda item: -item[1])
        },
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="milliseconds")
