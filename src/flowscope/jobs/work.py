"""What a worker does with a job: train one model type (or tune it) on a data set, log the
runs tagged with the job, register the result when asked, and tell the job's state as it
goes. A job that fails ends failed with the reason, its run marked FAILED by the SDK."""

from __future__ import annotations

import errno
import logging
import os
import select
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.config import Settings
from flowscope.errors import FlowscopeError
from flowscope.jobs.state import HEARTBEAT, Job, JobStore
from flowscope.public_reason import public_reason

if TYPE_CHECKING:
    from flowscope.tracking.run import Run

logger = logging.getLogger(__name__)

JOB_TAG = "flowscope.job"
# Test-only fault injection, read by the process running a job alone. When this variable
# names a FIFO that a test holds open for reading, a training job whose run exists writes
# ``<job id> <run id>`` as one line to it and then holds until the test closes its end: the
# moment a test kills the job's worker, or lets it go on. With nobody reading the FIFO the
# job goes on at once. An environment variable, not a setting: no user has a reason to set
# it, and an unset one costs one lookup per training job.
TEST_HOLD_JOBS_ENV = "_FLOWSCOPE_TEST_HOLD_JOBS_FIFO"


def run_job(settings: Settings, store: JobStore, job_id: str) -> None:
    """Run the job ``job_id`` here, unless it was cancelled or another worker took it."""
    if not store.claim(job_id):
        return
    job = store.get(job_id)
    stop = threading.Event()
    beating = threading.Thread(target=_beat, args=(store, job_id, stop), daemon=True)
    beating.start()
    try:
        outcome = (
            _tune(settings, store, job) if job.kind == "tune" else _train(settings, store, job)
        )
    except FlowscopeError as exc:
        if exc.detail:
            logger.warning("job %s failed: %s", job_id, exc.for_operator)
        store.finish(job_id, "failed", error=exc.message, run_ids=_runs_of(settings, job_id))
    except Exception as exc:  # a store that refused, a library's bug: said, not raised
        # the job's pages show the kind of problem; its words (paths, hosts, SQL) are logged
        logger.exception("job %s failed", job_id)
        error = public_reason(exc)
        store.finish(job_id, "failed", error=error, run_ids=_runs_of(settings, job_id))
    else:
        store.finish(job_id, "succeeded", **outcome)
    finally:
        stop.set()


def _beat(store: JobStore, job_id: str, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT):
        try:
            store.beat(job_id)
        except Exception as exc:  # the queue's store away for a moment: the next beat tries
            logger.warning("job %s: heartbeat failed: %s", job_id, exc)


def _train(settings: Settings, store: JobStore, job: Job) -> dict[str, Any]:
    from flowscope.modeling.train import train
    from flowscope.modeling.uploads import load_dataset

    request = job.request
    store.progress(job.job_id, 0.05, "loading the data set")
    frame, meta = load_dataset(settings, request["dataset_id"])
    params = request.get("params", {})
    store.progress(job.job_id, 0.1, f"training {request['model_type']}")
    result = train(
        frame,
        request["target"],
        request["model_type"],
        params,
        task=request["task"],
        test_size=request["test_size"],
        seed=request["seed"],
        run_name=request["model_type"],
        register=request.get("register") or None,
        dataset_name=meta.get("filename") or request["dataset_id"],
        dataset_file=_dataset_file(settings, request["dataset_id"], meta),
        tags={JOB_TAG: job.job_id, "flowscope.dataset": request["dataset_id"]},
        settings=settings,
        on_run_started=lambda run: _started(settings, store, job, run),
    )
    if not result.delivered:
        raise FlowscopeError(
            f"run {result.run_id} was trained but not all of it reached the tracking store "
            f"within {settings.flush_timeout:g} s; the rest is kept in the journal and "
            "`flowscope sync` delivers it"
            + ("; the model was not registered" if request.get("register") else "")
        )
    registered = None
    if result.registered_version is not None:
        registered = {"name": request["register"], "version": int(result.registered_version)}
    return {
        "run_ids": [result.run_id],
        "best_run_id": result.run_id,
        "metrics": _plain_metrics(result.metrics),
        "registered": registered,
    }


def _dataset_file(settings: Settings, dataset_id: str, meta: dict[str, Any]) -> Path | None:
    """The uploaded file a data set was read from (None for a built-in one)."""
    from flowscope.modeling.uploads import dataset_folder

    if meta.get("builtin") or not meta.get("filename"):
        return None
    return dataset_folder(settings, dataset_id) / str(meta["filename"])


def _started(settings: Settings, store: JobStore, job: Job, run: Run) -> None:
    """The run exists: the job names it from now on (its page links it)."""
    run.flush(settings.flush_timeout)  # its creation delivered: it has an id in the store
    run_id = run.run_id
    store.progress(
        job.job_id, 0.2, f"training {job.request['model_type']}", [run_id] if run_id else []
    )
    fifo = os.environ.get(TEST_HOLD_JOBS_ENV)
    if fifo:
        _report_and_hold(Path(fifo), f"{job.job_id} {run_id}")


def _report_and_hold(fifo: Path, line: str) -> None:
    """Write ``line`` to the test's FIFO, then hold until the test closes its reading end
    (:data:`TEST_HOLD_JOBS_ENV`); go on at once when nobody reads it."""
    try:
        # non-blocking, so that a FIFO nobody reads is an error (ENXIO) rather than a wait
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return
        raise
    try:
        os.set_blocking(fd, True)
        os.write(fd, f"{line}\n".encode())  # one short write: whole, never interleaved
        waiting = select.poll()
        waiting.register(fd, 0)  # only POLLERR: a pipe's writer gets it when its reader closes
        waiting.poll()
    except BrokenPipeError:  # the test closed its end first: nothing to hold for
        pass
    finally:
        os.close(fd)


def _tune(settings: Settings, store: JobStore, job: Job) -> dict[str, Any]:
    from flowscope.modeling.uploads import load_dataset
    from flowscope.tuning.catalog_study import TuneSpec, run_catalog_study

    request = job.request
    _, meta = load_dataset(settings, request["dataset_id"])  # checks it is still there
    trials = int(request["tune_trials"])
    spec = TuneSpec(
        dataset=str(
            _dataset_file(settings, request["dataset_id"], meta)
            or request["dataset_id"].removeprefix("builtin:")
        ),
        model=request["model_type"],
        trials=trials,
        target=request["target"],
        task=request["task"],
        seed=request["seed"],
        test_size=request["test_size"],
        register=request.get("register") or None,
        study=f"{request['task']}-{request['model_type']}-{job.job_id[:8]}",
    )

    def on_progress(done: int, total: int | None, best: float | None) -> None:
        shown = "" if best is None else f", best {best:.4g}"
        store.progress(job.job_id, 0.05 + 0.85 * done / trials, f"trial {done}/{trials}{shown}")

    outcome = run_catalog_study(spec, settings, on_progress)
    run_ids = [run_id for run_id in (outcome.parent_run_id,) if run_id]
    best_run_id, metrics, registered = None, {}, None
    if outcome.refit is not None and outcome.refit.run_id is not None:
        run_ids.append(outcome.refit.run_id)
        best_run_id = outcome.refit.run_id
        metrics = _plain_metrics(outcome.refit.metrics)
        if outcome.refit.registered_version is not None:
            version = int(outcome.refit.registered_version)
            registered = {"name": request["register"], "version": version}
    _tag_runs(settings, run_ids, job.job_id)
    return {
        "run_ids": run_ids,
        "best_run_id": best_run_id,
        "metrics": metrics,
        "registered": registered,
    }


def _tag_runs(settings: Settings, run_ids: list[str], job_id: str) -> None:
    from flowscope.mlflow_client import client_for

    client = client_for(settings)
    for run_id in run_ids:
        client.set_tag(run_id, JOB_TAG, job_id)


def _runs_of(settings: Settings, job_id: str) -> list[str]:
    """The runs tagged with the job (what a failed job still made)."""
    try:
        return [run.info.run_id for run in job_runs(settings, job_id)]
    except Exception:  # the store away: the job ends failed all the same
        return []


def job_runs(settings: Settings, job_id: str) -> list[Any]:
    from flowscope.mlflow_client import client_for

    client = client_for(settings)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return []
    return list(client.search_runs(experiments, f"tags.`{JOB_TAG}` = '{job_id}'"))


def _plain_metrics(metrics: Any) -> dict[str, float]:
    return {
        str(key): float(value)
        for key, value in dict(metrics).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
