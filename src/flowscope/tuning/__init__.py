"""Optuna studies as parent runs, trials as child runs, parameter importances.

Running studies needs the ``tune`` extra (``pip install 'flowscope[tune]'``): the names
below, and the modules that run studies, raise an error that says so without Optuna.
Reading studies back (:mod:`flowscope.tuning.names`, :mod:`flowscope.tuning.view`) needs
only the MLflow store, so the dashboard shows studies where Optuna is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flowscope.tuning.study import TuneResult, open_study, tune
    from flowscope.tuning.summary import StudySummary, importances, summarize
    from flowscope.tuning.tracker import StudyTracker

__all__ = [
    "StudySummary",
    "StudyTracker",
    "TuneResult",
    "importances",
    "open_study",
    "summarize",
    "tune",
]

_LAZY = {
    "StudySummary": "flowscope.tuning.summary",
    "StudyTracker": "flowscope.tuning.tracker",
    "TuneResult": "flowscope.tuning.study",
    "importances": "flowscope.tuning.summary",
    "open_study": "flowscope.tuning.study",
    "summarize": "flowscope.tuning.summary",
    "tune": "flowscope.tuning.study",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowscope.tuning' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
