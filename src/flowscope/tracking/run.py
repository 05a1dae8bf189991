"""``start_run`` and the ``Run`` it returns: every call lands in the journal, then returns."""

from __future__ import annotations

import atexit
import json
import logging
import numbers
import re
import shutil
import time
import traceback
import uuid
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from flowscope.config import Settings, load_settings
from flowscope.errors import FlowscopeError
from flowscope.os_user import os_user
from flowscope.tracking.kinds import KIND_TAG, KINDS
from flowscope.tracking.params import flatten_params

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.explain import Explanation, FairnessReport
    from flowscope.tracking.courier import Courier, Handle
    from flowscope.tracking.evaluation import Evaluation
    from flowscope.tracking.journal import Journal
    from flowscope.tracking.writer import Writer

logger = logging.getLogger(__name__)

TASK_TAG = "flowscope.task"
ERROR_TAG = "flowscope.error"
_KEY_PATTERN = re.compile(r"^[/\w.\- :]{1,250}$")
_MAX_PARAM_LENGTH = 6000
_MAX_TAG_LENGTH = 8000


def _now_ms() -> int:
    return int(time.time() * 1000)


def _check_key(key: str, what: str) -> None:
    if not isinstance(key, str) or not _KEY_PATTERN.fullmatch(key) or "/../" in f"/{key}/":
        raise FlowscopeError(
            f"invalid {what} name {key!r}: use 1 to 250 letters, digits, '_', '-', '.', ' ', "
            "':' or '/'"
        )


class Run:
    """One MLflow run written through the journal; use it as a context manager.

    >>> with flowscope.start_run("iris", run_name="rf") as run:   # doctest: +SKIP
    ...     run.log_params({"model": {"n_estimators": 100}})
    ...     run.log_metrics({"loss": 0.31}, step=1)

    Every ``log_*`` call appends to the on-disk journal and returns; the run's writer
    thread delivers in the background. Leaving the ``with`` block waits, at most
    ``flush_timeout`` seconds, for the delivery to finish.
    """

    def __init__(
        self,
        *,
        task: str,
        kind: str,
        local_id: str,
        settings: Settings,
        journal: Journal | None,
        writer: Writer | Handle | None,
    ) -> None:
        self.task = task
        self.kind = kind
        self.local_id = local_id
        self.settings = settings
        self._journal = journal
        self._writer = writer
        self._ended = False
        self._failed_append = False
        self._status = "FINISHED"
        self._params: dict[str, str] = {}
        self._metric_keys: set[str] = set()
        self._best: dict[str, tuple[str, float | None, int | None]] = {}
        self._timers: dict[str, list[float]] = {}
        self._started = time.perf_counter()
        self._stash_index = 0

    # -- identity ----------------------------------------------------------------------

    @property
    def delivery_error(self) -> str | None:
        """Why the last delivery attempt failed, while the writer is retrying; else None."""
        return None if self._writer is None else self._writer.last_error

    @property
    def run_id(self) -> str | None:
        """The MLflow run id; None while the store has not been reached yet."""
        if self._writer is None:
            return None
        return self._writer.delivery.run_id

    @property
    def active(self) -> bool:
        return not self._ended

    def __repr__(self) -> str:
        return f"<flowscope.Run task={self.task!r} kind={self.kind} run_id={self.run_id}>"

    # -- params, metrics, tags ---------------------------------------------------------

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters; nested dicts become dotted names (``{"a": {"b": 1}}`` → ``a.b``).

        Logging a parameter again with the same value is a no-op; with another value it is
        an error, as in MLflow (parameters describe a run and do not change within it).
        """
        fresh: dict[str, str] = {}
        for key, value in flatten_params(params).items():
            _check_key(key, "parameter")
            text = str(value)
            if len(text) > _MAX_PARAM_LENGTH:
                raise FlowscopeError(
                    f"parameter {key!r} is {len(text)} characters long; MLflow keeps at most "
                    f"{_MAX_PARAM_LENGTH} (log it as an artifact instead)"
                )
            previous = self._params.get(key)
            if previous == text:
                continue
            if previous is not None:
                raise FlowscopeError(
                    f"parameter {key!r} was logged as {previous!r} and cannot change to {text!r}"
                )
            fresh[key] = text
        if fresh:
            self._params.update(fresh)
            self._append({"op": "params", "d": fresh})

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        self.log_metrics({key: value}, step=step, timestamp=timestamp)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Log metric values at ``step`` (0 when not given), as one journal record."""
        data: dict[str, float] = {}
        for key, value in metrics.items():
            if key not in self._metric_keys:
                _check_key(key, "metric")
                self._metric_keys.add(key)
            if not isinstance(value, numbers.Real):
                raise FlowscopeError(f"metric {key!r} must be a number, not {value!r}")
            data[key] = float(value)
        record = {"op": "metrics", "d": data, "s": step or 0, "t": timestamp or _now_ms()}
        self._append(record)
        if self._best:
            self._update_best(data, step or 0)

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        data = {}
        for key, value in tags.items():
            _check_key(key, "tag")
            data[key] = str(value)[:_MAX_TAG_LENGTH]
        if data:
            self._append({"op": "tags", "d": data})

    def track_best(self, metric: str, mode: str = "max") -> None:
        """Summarise ``metric`` over its steps: at the end the run gets ``best_<metric>`` and
        ``best_<metric>_step`` (e.g. the best validation accuracy and its epoch)."""
        if mode not in ("max", "min"):
            raise FlowscopeError(f"mode for best {metric!r} must be 'max' or 'min', not {mode!r}")
        _check_key(metric, "metric")
        self._best[metric] = (mode, None, None)

    def _update_best(self, data: Mapping[str, float], step: int) -> None:
        for metric, (mode, best, _) in self._best.items():
            value = data.get(metric)
            if value is None or value != value:  # absent or NaN
                continue
            if best is None or (value > best if mode == "max" else value < best):
                self._best[metric] = (mode, value, step)

    # -- timing ------------------------------------------------------------------------

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Time a block: logs ``<name>_time_s`` and adds it to the runtime report."""
        _check_key(f"{name}_time_s", "timer")
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            calls = self._timers.setdefault(name, [])
            calls.append(elapsed)
            self.log_metrics({f"{name}_time_s": elapsed}, step=len(calls) - 1)

    def runtime_report(self) -> dict[str, Any]:
        """Wall time of the run so far and every timer's total, count and mean, in seconds."""
        return {
            "wall_time_s": time.perf_counter() - self._started,
            "timers": {
                name: {
                    "total_s": sum(calls),
                    "count": len(calls),
                    "mean_s": sum(calls) / len(calls),
                }
                for name, calls in self._timers.items()
            },
        }

    # -- artifacts ---------------------------------------------------------------------

    def _stash(self, name: str) -> tuple[Path, str] | None:
        """A fresh place inside the journal for an artifact, and its name relative to it."""
        if self._journal is None or self._ended:
            return None
        self._stash_index += 1
        relative = f"{self._stash_index:05d}/{name}"
        path = self._journal.files_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, relative

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Copy a file or folder into the journal and log it under ``artifact_path``."""
        source = Path(local_path)
        if not source.exists():
            raise FlowscopeError(f"cannot log artifact {str(source)!r}: no such file or folder")
        stashed = self._stash(source.name)
        if stashed is None:
            return
        path, relative = stashed
        if source.is_dir():
            shutil.copytree(source, path)
            self._append(
                {"op": "artifact", "src": relative, "dst": _join(artifact_path, source.name)}
            )
        else:
            shutil.copy2(source, path)
            self._append({"op": "artifact", "src": relative, "dst": artifact_path})

    def _log_written(self, artifact_file: str, write: Any) -> None:
        """Log an artifact produced by ``write(path)`` straight into the journal."""
        folder, _, name = artifact_file.rpartition("/")
        stashed = self._stash(name)
        if stashed is None:
            return
        path, relative = stashed
        write(path)
        self._append({"op": "artifact", "src": relative, "dst": folder or None})

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self._log_written(
            artifact_file,
            lambda path: path.write_text(json.dumps(data, indent=2, default=_json_default)),
        )

    def log_text(self, text: str, artifact_file: str) -> None:
        self._log_written(artifact_file, lambda path: path.write_text(text))

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Save a matplotlib figure as an artifact (PNG unless the name says otherwise)."""
        self._log_written(artifact_file, lambda path: figure.savefig(path, bbox_inches="tight"))

    def log_table(self, frame: pd.DataFrame, artifact_file: str) -> None:
        """Save a DataFrame as parquet or CSV, by the artifact's extension."""
        if artifact_file.endswith(".parquet"):
            self._log_written(artifact_file, lambda path: frame.to_parquet(path, index=False))
        elif artifact_file.endswith(".csv"):
            self._log_written(artifact_file, lambda path: frame.to_csv(path, index=False))
        else:
            raise FlowscopeError(f"table artifact {artifact_file!r} must end in .parquet or .csv")

    # -- richer records ----------------------------------------------------------------

    def log_evaluation(
        self,
        y_true: Any,
        y_pred: Any = None,
        y_score: Any = None,
        *,
        labels: Any = None,
        thresholds: Any = None,
        problem: str | None = None,
        quantiles: Mapping[float, Any] | None = None,
        intervals: Any = None,
        class_names: Mapping[Any, Any] | None = None,
    ) -> Evaluation:
        """Compute and log an evaluation (see :mod:`flowscope.tracking.evaluation`)."""
        from flowscope.tracking.records import log_evaluation

        return log_evaluation(
            self,
            y_true,
            y_pred,
            y_score,
            labels=labels,
            thresholds=thresholds,
            problem=problem,
            quantiles=quantiles,
            intervals=intervals,
            class_names=class_names,
        )

    def log_dataset(
        self,
        frame: pd.DataFrame,
        target: str | None = None,
        *,
        name: str = "train",
        context: str = "training",
        source: str | None = None,
    ) -> dict[str, Any]:
        """Profile a dataset, log the profile and record the dataset as an MLflow input."""
        from flowscope.tracking.records import log_dataset

        return log_dataset(self, frame, target, name=name, context=context, source=source)

    def log_environment(
        self,
        seeds: Mapping[str, int] | None = None,
        *,
        environment: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Log Python and package versions, the git commit and the seeds given."""
        from flowscope.tracking.records import log_environment

        return log_environment(self, seeds, environment=environment)

    def log_explanations(
        self, model: Any, X: Any, background: Any = None, max_rows: int = 1000
    ) -> Explanation:
        """Compute exact SHAP values of ``model`` on ``X`` and log them under ``explain/``
        with the metric ``shap_additivity_error`` (see :mod:`flowscope.explain`)."""
        from flowscope.explain.records import log_explanations

        return log_explanations(self, model, X, background=background, max_rows=max_rows)

    def log_fairness(
        self, y_true: Any, y_pred: Any, sensitive_features: Any, *, pos_label: Any = None
    ) -> FairnessReport:
        """Log per-group metrics (``fairness/by_group.json``) and the demographic parity and
        equalized odds differences as ``fairness_*`` metrics (see
        :mod:`flowscope.explain.fairness`)."""
        from flowscope.explain.fairness import log_fairness

        return log_fairness(self, y_true, y_pred, sensitive_features, pos_label=pos_label)

    def log_model(
        self,
        model: Any,
        name: str = "model",
        *,
        input_example: Any = None,
        signature: Any = None,
        register: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Save a scikit-learn model (with signature and input example) and log it as
        ``name``; ``register`` also makes it a new version of that registered model."""
        from flowscope.tracking.models import save_model

        _check_key(name, "model artifact")
        stashed = self._stash(name)
        if stashed is None:
            return
        path, relative = stashed
        save_model(model, path, input_example=input_example, signature=signature, metadata=metadata)
        self._append({"op": "model", "src": relative, "dst": name, "register": register})

    def log_inputs_record(self, datasets: list[dict[str, Any]]) -> None:
        self._append({"op": "inputs", "datasets": datasets})

    def log_error(self, error: BaseException) -> None:
        """Keep the error's traceback as ``error/traceback.txt`` and mark the run FAILED."""
        text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
        self.set_tags({ERROR_TAG: f"{type(error).__name__}: {error}"[:500]})
        self.log_text(text, "error/traceback.txt")
        self._status = "FAILED"

    def flush(self, timeout: float | None = None) -> bool:
        """Wait (at most ``timeout``, default ``flush_timeout``) until every record logged
        so far is in the store, the run going on; True when it is. A run its courier
        holds back until it ends or goes on long enough (a short trial) waits for that."""
        if self._writer is None:
            return True
        wait = self.settings.flush_timeout if timeout is None else timeout
        return self._writer.wait_caught_up(wait)

    def wait_delivery_failure(self, timeout: float) -> bool:
        """Wait until a delivery attempt has failed and is being retried (the store away);
        False if ``timeout`` ran out first. ``delivery_error`` then says why."""
        if self._writer is None:
            return False
        return self._writer.wait_failing(timeout)

    # -- ending ------------------------------------------------------------------------

    def end(self, status: str | None = None, *, timeout: float | None = None) -> bool:
        """End the run and wait for its delivery; True when every record reached the store.

        What is not delivered within ``timeout`` (default ``flush_timeout``) stays in the
        journal; the writer keeps going while the process lives, and ``flowscope sync``
        delivers it after.
        """
        if self._ended:
            return self._writer is None or self._writer.finished.is_set()
        final_status = status or self._status
        summary: dict[str, float] = {}
        for metric, (_, best, step) in self._best.items():
            if best is not None and step is not None:
                summary[f"best_{metric}"] = best
                summary[f"best_{metric}_step"] = float(step)
        if summary:
            self.log_metrics(summary)
        if self._timers:
            self.log_dict(self.runtime_report(), "runtime/runtime.json")
        self._append({"op": "end", "status": final_status, "t": _now_ms()})
        self._ended = True
        if self._writer is None:
            return True
        wait = self.settings.flush_timeout if timeout is None else timeout
        if self._writer.wait(wait):
            return True
        if wait <= 0:  # the caller chose not to wait: its writer delivers in the background
            return False
        logger.warning(
            "flowscope: run %s: %d bytes of records were not delivered within %.0f s (%s); "
            "they are kept in %s and `flowscope sync` delivers them",
            self.run_id or self.local_id,
            self._writer.pending_bytes(),
            wait,
            self._writer.last_error or "store busy",
            self._writer.journal.path,
        )
        return False

    def __enter__(self) -> Run:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.end()
        elif isinstance(exc, KeyboardInterrupt):
            self.end("KILLED")
        else:
            try:
                self.log_error(exc)
            finally:
                self.end("FAILED")

    # -- the journal -------------------------------------------------------------------

    def _append(self, record: dict[str, Any]) -> None:
        if self._ended:
            raise FlowscopeError(f"run {self.run_id or self.local_id} has ended")
        if self._journal is None or self._failed_append:
            return
        try:
            self._journal.append(record)
        except OSError as exc:  # a full or read-only disk must not stop training
            self._failed_append = True
            logger.warning(
                "flowscope: cannot write the journal %s (%s); this run records nothing more",
                self._journal.path,
                exc,
            )
            return
        assert self._writer is not None
        self._writer.notify(final=record["op"] == "end")


def _join(folder: str | None, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder else name


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def start_run(
    task: str,
    run_name: str | None = None,
    kind: str = "training",
    *,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
    seeds: Mapping[str, int] | None = None,
    best: Mapping[str, str] | None = None,
    parent: Run | str | None = None,
    description: str | None = None,
    settings: Settings | None = None,
    local_id: str | None = None,
    courier: Courier | None = None,
) -> Run:
    """Start a run of ``task`` in the experiment named after it (``<task>-inference`` for
    inference runs) and return it; use it as a context manager.

    ``best`` maps step metrics to ``"max"``/``"min"`` to summarise at the end; ``parent``
    nests the run under another (a ``Run`` or an MLflow run id). If the store cannot be
    reached within ``start_timeout`` the run goes on offline and is created later.
    ``local_id`` names the run's journal (a fresh id by default): a writer that may be
    asked twice for the same run names it, to find the journal of a first attempt.
    ``courier`` delivers the run together with others instead of a thread of its own
    (many short runs: see :mod:`flowscope.tracking.courier`).
    """
    from flowscope.tracking.journal import Journal
    from flowscope.tracking.store import StoreAccess
    from flowscope.tracking.sync import recover_in_background
    from flowscope.tracking.writer import Writer

    settings = settings or load_settings()
    if kind not in KINDS:
        raise FlowscopeError(f"unknown run kind {kind!r}; use one of {', '.join(KINDS)}")
    if not task or not isinstance(task, str):
        raise FlowscopeError("a run needs a task name (the experiment it belongs to)")
    local_id = local_id or uuid.uuid4().hex

    def unrecorded() -> Run:
        run = Run(
            task=task, kind=kind, local_id=local_id, settings=settings, journal=None, writer=None
        )
        for metric, mode in (best or {}).items():
            run.track_best(metric, mode)
        return run

    if not settings.tracking:
        return unrecorded()

    run_tags: dict[str, str] = {KIND_TAG: kind, TASK_TAG: task}
    if description:
        run_tags["mlflow.note.content"] = description
    environment = None
    if settings.autolog:
        from flowscope.tracking.environment import capture_environment, source_tags

        environment = capture_environment(seeds=seeds)
        run_tags.update(source_tags(environment))
    for key, value in (tags or {}).items():
        _check_key(key, "tag")
        run_tags[key] = str(value)
    parent_ref = None
    if isinstance(parent, Run):
        parent_ref = {"local_id": parent.local_id, "run_id": parent.run_id}
    elif parent:
        parent_ref = {"local_id": None, "run_id": parent}
    header = {
        "op": "run",
        "experiment": settings.experiment_name(task, kind),
        "run_name": run_name,
        "tags": run_tags,
        "t": _now_ms(),
        "user": os_user(),
        "parent": parent_ref,
    }
    try:
        journal = Journal.create(settings.journal_dir, local_id, header)
    except OSError as exc:  # a read-only or full disk must not stop training
        logger.warning(
            "flowscope: cannot create the journal in %s (%s); run %r of %s records nothing",
            settings.journal_dir,
            exc,
            run_name,
            task,
        )
        return unrecorded()
    writer: Writer | Handle
    if courier is not None:
        writer = courier.take(journal)
    else:
        writer = Writer(journal, StoreAccess(settings), max_backoff=settings.max_backoff)
    if settings.sync_on_start:
        recover_in_background(settings)
    if courier is None:  # a courier creates its runs when they end or go on (no wait)
        writer.created.wait(settings.start_timeout)
    run = Run(
        task=task, kind=kind, local_id=local_id, settings=settings, journal=journal, writer=writer
    )
    for metric, mode in (best or {}).items():
        run.track_best(metric, mode)
    if params:
        run.log_params(params)
    if environment is not None:
        run.log_environment(seeds, environment=environment)
    _end_at_exit(run)
    return run


def _end_at_exit(run: Run) -> None:
    """A run still open when the interpreter exits is ended (its delivery bounded) as in
    MLflow; only a weak reference is kept, so finished runs are not held alive."""
    reference = weakref.ref(run)

    def end() -> None:
        alive = reference()
        if alive is not None and alive.active:
            alive.end()

    atexit.register(end)
