"""What the jobs pages and the jobs API show: one dict per page, built from the queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flowscope.config import Settings
from flowscope.errors import NotFoundError
from flowscope.jobs.queue import JobQueue
from flowscope.jobs.state import Job

# The metric that picks the best run of a batch, by problem: (name, higher is better).
_RANKING = {
    "binary": ("accuracy", True),
    "multiclass": ("accuracy", True),
    "regression": ("rmse", False),
}


def jobs_view(
    queue: JobQueue, *, batch: str = "", visible: Callable[[Job], bool] | None = None
) -> dict[str, Any]:
    """Every job, or those of ``batch``, that ``visible`` says the user may see; a batch no
    job belongs to is a 404 naming it."""
    jobs = [
        job
        for job in queue.all()
        if (not batch or job.batch == batch) and (visible is None or visible(job))
    ]
    if batch and not jobs:
        raise NotFoundError(f"no batch of jobs {batch[:40]!r}")
    counts = {state: sum(job.state == state for job in jobs) for state in _STATES}
    best = best_of_batch(queue, jobs[0]) if batch and jobs else None
    return {
        "batch": batch or None,
        "jobs": [_row(job) for job in jobs],
        "counts": counts,
        "best": best,
        "live": any(not job.finished for job in jobs),
        "queue": queue.kind,
    }


_STATES = ("queued", "running", "succeeded", "failed", "cancelled")


def job_view(settings: Settings, queue: JobQueue, job_id: str) -> dict[str, Any]:
    job = queue.get(job_id)
    siblings = [other for other in queue.all() if other.batch == job.batch]
    request = job.request
    return {
        "job": _row(job),
        "state": job.state,
        "progress": job.progress,
        "run_ids": job.run_ids,
        "error": job.error,
        "batch": [_row(other) for other in siblings],
        "best": best_of_batch(queue, job, siblings),
        "live": any(not other.finished for other in siblings),
        "register_name": request.get("register") or request.get("task"),
        "mlflow_ui_url": settings.mlflow_ui_url,
    }


def best_of_batch(
    queue: JobQueue, job: Job, siblings: list[Job] | None = None
) -> dict[str, Any] | None:
    """The best run among the jobs submitted with ``job`` that succeeded, by accuracy
    (classification) or RMSE (regression); ties go to the earlier job."""
    jobs = siblings if siblings is not None else [o for o in queue.all() if o.batch == job.batch]
    metric, higher = _RANKING.get(str(job.request.get("problem")), ("accuracy", True))
    scored = [
        (other.metrics[metric], other.created, other)
        for other in jobs
        if other.state == "succeeded" and other.best_run_id and metric in other.metrics
    ]
    if not scored:
        return None
    value, _, winner = sorted(scored, key=lambda t: ((-t[0] if higher else t[0]), t[1]))[0]
    return {
        "job_id": winner.job_id,
        "run_id": winner.best_run_id,
        "model_type": winner.request.get("model_type"),
        "metric": metric,
        "direction": "max" if higher else "min",
        "value": value,
        "registered": winner.registered,
    }


def _row(job: Job) -> dict[str, Any]:
    data = job.as_dict()
    data["model_type"] = job.request.get("model_type")
    data["task"] = job.request.get("task")
    data["dataset_id"] = job.request.get("dataset_id")
    return data
