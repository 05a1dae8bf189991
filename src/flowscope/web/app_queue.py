"""The dashboard's job queue, one per app, opened on first use: shared by the job routes,
their permission rules and the server's health check."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from flowscope.jobs import JobQueue


def job_queue(request: Request) -> JobQueue:
    return job_queue_of(request.app)


def job_queue_of(app: Any) -> JobQueue:
    """The app's queue, opened on first use."""
    state = app.state
    queue = getattr(state, "jobs", None)
    if queue is None:
        queue = state.jobs = JobQueue(state.settings)
    return queue
