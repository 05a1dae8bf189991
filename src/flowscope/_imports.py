"""Import heavy optional libraries where they are used, with a message naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from flowscope.errors import MissingDependencyError


def try_import(module: str, extra: str) -> ModuleType:
    """Import ``module`` or raise an error that says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module} is needed for this; install it with: pip install 'flowscope[{extra}]'"
        ) from exc
