"""Querying runs, the best run, and differences between runs."""

from flowscope.analysis.best import BestRun, best_run, default_direction
from flowscope.analysis.runs import run_row, run_rows, search_runs

__all__ = ["BestRun", "best_run", "default_direction", "run_row", "run_rows", "search_runs"]
