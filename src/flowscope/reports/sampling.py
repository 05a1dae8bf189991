"""Thinning a ranking: the runs a chart draws or an evaluator sees when there are many."""

from __future__ import annotations

import numpy as np


def evenly_spaced(count: int, limit: int) -> np.ndarray:
    """Indexes of at most ``limit`` of ``count`` ranked runs, evenly spaced from the first
    (the best, always kept) to the last; every index when there are no more than ``limit``."""
    if count <= limit:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, limit).round().astype(int))
