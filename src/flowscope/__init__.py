"""flowscope: an extended MLflow for tracking experiments and managing models.

``import flowscope`` stays light: the SDK's entry points load MLflow and friends only when
first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "FlowscopeError",
    "Run",
    "Settings",
    "__version__",
    "load_settings",
    "start_run",
    "tune",
]

if TYPE_CHECKING:
    from flowscope.config import Settings, load_settings
    from flowscope.errors import FlowscopeError
    from flowscope.tracking import Run, start_run
    from flowscope.tuning import tune

_LAZY = {
    "Run": "flowscope.tracking",
    "start_run": "flowscope.tracking",
    "Settings": "flowscope.config",
    "load_settings": "flowscope.config",
    "FlowscopeError": "flowscope.errors",
    "tune": "flowscope.tuning",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flowscope' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
