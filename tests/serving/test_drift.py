"""Population stability index against the training profile's own bins."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from flowscope.serving.drift import (
    categorical_counts,
    drift_metrics,
    feature_drift,
    numeric_counts,
    psi,
)
from flowscope.tracking.profile import profile_dataset


def test_psi_matches_its_definition() -> None:
    expected, actual = [50, 30, 20], [30, 30, 40]
    p, q = np.array(expected) / 100, np.array(actual) / 100
    assert psi(expected, actual) == pytest.approx(float(np.sum((q - p) * np.log(q / p))))
    assert psi([10, 20], [1, 2]) == pytest.approx(0.0)
    assert psi([1, 0], [0, 1]) > 1  # an empty bin is floored, not infinite
    assert math.isnan(psi([0, 0], [1, 2]))


def test_numeric_bins_are_the_profiles_with_open_ends() -> None:
    histogram = {"edges": [0.0, 1.0, 2.0, 3.0], "counts": [10, 10, 10]}
    values = np.array([-5.0, 0.0, 0.5, 1.0, 2.99, 3.0, 9.0, np.nan, np.inf])
    reference, current = numeric_counts(histogram, values)
    assert reference == [10, 10, 10]
    assert current == [3, 1, 3]  # below the range joins the first bin, above the last
    single = {"edges": [4.0, 4.0], "counts": [7]}
    assert numeric_counts(single, np.array([3.0, 4.0, 4.0, 5.0])) == ([0, 7, 0], [1, 2, 1])


def test_categories_outside_the_top_count_as_other() -> None:
    summary = {"top": {"a": 6, "b": 3}, "other": 1}
    assert categorical_counts(summary, ["a", "b", "c", None, "a", True]) == ([6, 3, 1], [2, 1, 2])


def test_same_distribution_stays_below_0_1_and_a_shift_goes_above_0_2() -> None:
    rng = np.random.default_rng(7)

    def sample(rows: int, shift: float = 0.0, share_b: float = 0.3) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "skewed": rng.lognormal(0, 1, rows) + shift,
                "count": rng.poisson(3, rows).astype(float),
                "colour": rng.choice(["a", "b", "c"], rows, p=[0.7 - share_b, share_b, 0.3]),
            }
        )

    profile = profile_dataset(sample(5000))
    same = feature_drift(profile, sample(2000))
    assert set(same) == {"skewed", "count", "colour"} and max(same.values()) < 0.1
    moved = feature_drift(profile, sample(2000, shift=1.0, share_b=0.6))
    assert moved["skewed"] > 0.2 and moved["colour"] > 0.2 and moved["count"] < 0.1
    metrics = drift_metrics(moved, 0.2)
    assert metrics["drift_detected"] == 1 and metrics["drift_features"] == 2
    assert metrics["drift_max_psi"] == max(moved.values())
    assert drift_metrics(same, 0.2)["drift_detected"] == 0
    assert drift_metrics({}) == {}
