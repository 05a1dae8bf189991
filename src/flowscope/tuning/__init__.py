"""Optuna studies as parent runs, trials as child runs, parameter importances.

Needs the ``tune`` extra (``pip install 'flowscope[tune]'``): importing this package without
Optuna raises an error that says so.
"""

from flowscope._imports import try_import

try_import("optuna", "tune")

from flowscope.tuning.study import TuneResult, open_study, tune  # noqa: E402
from flowscope.tuning.summary import StudySummary, importances, summarize  # noqa: E402
from flowscope.tuning.tracker import StudyTracker  # noqa: E402

__all__ = [
    "StudySummary",
    "StudyTracker",
    "TuneResult",
    "importances",
    "open_study",
    "summarize",
    "tune",
]
