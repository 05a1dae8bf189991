"""Drift of served inputs against the training profile: population stability index.

PSI = Σ (p_now − p_train) · ln(p_now / p_train) over the bins of the training profile:
its decile edges for a numeric feature (values beyond the training range fall in the end
bins), its top categories plus "other" for a categorical one. Empty bins are floored at a
small share so that a bin seen on one side only adds a large but finite term. By the usual
reading, below 0.1 is stable, 0.1 to 0.2 a moderate shift, above 0.2 a drift.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

EPSILON = 1e-4  # the share an empty bin counts as
DRIFT_THRESHOLD = 0.2


def psi(expected: Iterable[float], actual: Iterable[float]) -> float:
    """The population stability index between two count (or share) vectors of one binning."""
    import numpy as np

    reference = np.asarray(list(expected), dtype=np.float64)
    observed = np.asarray(list(actual), dtype=np.float64)
    if reference.sum() <= 0 or observed.sum() <= 0:
        return math.nan
    p_ref = np.maximum(reference / reference.sum(), EPSILON)
    p_obs = np.maximum(observed / observed.sum(), EPSILON)
    return float(np.sum((p_obs - p_ref) * np.log(p_obs / p_ref)))


def numeric_counts(histogram: Mapping[str, Any], values: np.ndarray) -> tuple[list[int], list[int]]:
    """Training counts and current counts of finite ``values`` in the histogram's bins.

    Bins are ``[e_i, e_i+1)`` with the last one closed, as NumPy counts them; values below
    the first edge or above the last go to the end bins. A feature with a single training
    value gets three bins: below it, at it, above it.
    """
    import numpy as np

    edges = np.asarray(histogram["edges"], dtype=np.float64)
    reference = [int(count) for count in histogram["counts"]]
    finite = values[np.isfinite(values)]
    if len(reference) == 1:
        only = edges[0]
        below, at = int((finite < only).sum()), int((finite == only).sum())
        return [0, reference[0], 0], [below, at, int(finite.size) - below - at]
    positions = np.searchsorted(edges[1:-1], finite, side="right")
    current = np.bincount(positions, minlength=len(reference))
    return reference, [int(count) for count in current]


def categorical_counts(summary: Mapping[str, Any], values: Iterable[Any]) -> tuple[list, list]:
    """Training and current counts over the profile's top categories, then "other"."""
    top: Mapping[str, int] = summary.get("top") or {}
    index = {category: position for position, category in enumerate(top)}
    current = [0] * (len(top) + 1)
    for value in values:
        if value is None or (isinstance(value, float) and value != value):
            continue
        current[index.get(str(value), len(top))] += 1
    reference = [int(count) for count in top.values()] + [int(summary.get("other") or 0)]
    return reference, current


def feature_drift(profile: Mapping[str, Any], frame: pd.DataFrame) -> dict[str, float]:
    """PSI of every input feature the profile describes; features without a usable
    reference (a datetime, a column that was all missing) are left out."""
    import numpy as np

    scores: dict[str, float] = {}
    for name, summary in (profile.get("features") or {}).items():
        if name not in frame.columns:
            continue
        kind = summary.get("kind")
        if kind == "numeric" and summary.get("histogram"):
            values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            reference, current = numeric_counts(summary["histogram"], values)
        elif kind == "categorical" and (summary.get("top") or summary.get("other")):
            reference, current = categorical_counts(summary, frame[name].tolist())
        else:
            continue
        score = psi(reference, current)
        if math.isfinite(score):
            scores[name] = score
    return scores


def drift_metrics(scores: Mapping[str, float], threshold: float = DRIFT_THRESHOLD) -> dict:
    """The run's drift metrics: ``drift_psi_<feature>``, ``drift_max_psi``, the number of
    drifted features, and ``drift_detected`` (1 when any feature's PSI is above
    ``threshold``)."""
    if not scores:
        return {}
    metrics: dict[str, float] = {f"drift_psi_{name}": value for name, value in scores.items()}
    worst = max(scores.values())
    metrics["drift_max_psi"] = worst
    metrics["drift_features"] = float(sum(value > threshold for value in scores.values()))
    metrics["drift_detected"] = 1.0 if worst > threshold else 0.0
    return metrics
