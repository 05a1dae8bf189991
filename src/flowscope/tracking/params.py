"""Parameters as MLflow keeps them: flat names, string values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested config dicts into dotted names.

    >>> flatten_params({"model": {"depth": 3, "loss": "log"}, "seed": 1})
    {'model.depth': 3, 'model.loss': 'log', 'seed': 1}
    """
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat
