"""Background work on huey: training and tuning queued from the workbench."""

from flowscope.jobs.queue import JobQueue, JobQueueUnreachableError
from flowscope.jobs.state import Job, JobStore
from flowscope.jobs.submit import TrainRequest, parse_params, submit_training

__all__ = [
    "Job",
    "JobQueue",
    "JobQueueUnreachableError",
    "JobStore",
    "TrainRequest",
    "parse_params",
    "submit_training",
]
