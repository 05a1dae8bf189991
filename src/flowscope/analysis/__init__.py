"""Reading runs (one path: :mod:`flowscope.analysis.query`), the best run, significance,
differences between runs."""

from flowscope.analysis._rows import run_row
from flowscope.analysis.best import BestRun, best_run, default_direction
from flowscope.analysis.task_runs import best_task_run, list_task_runs

__all__ = [
    "BestRun",
    "best_run",
    "best_task_run",
    "default_direction",
    "list_task_runs",
    "run_row",
]
