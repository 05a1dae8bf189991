"""Brute-force Shapley values, by enumerating every coalition of features: the reference
the explainers are held to."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from math import factorial

import numpy as np


def shapley(worth: Callable[[tuple[bool, ...]], np.ndarray], features: int) -> np.ndarray:
    """``features × outputs`` Shapley values of the game ``worth(coalition mask)``."""
    values: dict[tuple[bool, ...], np.ndarray] = {
        mask: np.atleast_1d(worth(mask))
        for mask in itertools.product([False, True], repeat=features)
    }
    outputs = len(next(iter(values.values())))
    phi = np.zeros((features, outputs))
    for mask, value in values.items():
        size = sum(mask)
        for i in range(features):
            if mask[i]:
                continue
            with_i = tuple(True if j == i else mask[j] for j in range(features))
            weight = factorial(size) * factorial(features - size - 1) / factorial(features)
            phi[i] += weight * (values[with_i] - value)
    return phi


def interventional(
    output: Callable[[np.ndarray], np.ndarray], x: np.ndarray, background: np.ndarray
) -> np.ndarray:
    """Shapley values of ``output`` (rows → rows × outputs) at ``x``: a coalition's worth is
    the mean output over the background rows with the coalition's features taken from x."""

    def worth(mask: tuple[bool, ...]) -> np.ndarray:
        mixed = np.where(np.array(mask)[None, :], x[None, :], background)
        return np.asarray(output(mixed), dtype=float).reshape(len(background), -1).mean(axis=0)

    return shapley(worth, len(x))


def path_dependent(trees: list[tuple[object, np.ndarray]], x: np.ndarray) -> np.ndarray:
    """Tree-path-dependent Shapley values of a sum of scikit-learn trees, given as
    ``(tree_, leaf values nodes × outputs)``: a feature outside the coalition sends the
    row down both children, weighted by their training cover (Lundberg's EXPVALUE)."""
    x32 = x.astype(np.float32).astype(np.float64)  # as scikit-learn compares

    def expected(tree: object, values: np.ndarray, node: int, mask: tuple[bool, ...]) -> np.ndarray:
        left, right = tree.children_left[node], tree.children_right[node]
        if left < 0:
            return values[node]
        feature = tree.feature[node]
        if mask[feature]:
            child = left if x32[feature] <= tree.threshold[node] else right
            return expected(tree, values, child, mask)
        cover = tree.weighted_n_node_samples
        return (
            cover[left] * expected(tree, values, left, mask)
            + cover[right] * expected(tree, values, right, mask)
        ) / cover[node]

    def worth(mask: tuple[bool, ...]) -> np.ndarray:
        return sum(expected(tree, values, 0, mask) for tree, values in trees)

    return shapley(worth, len(x))
