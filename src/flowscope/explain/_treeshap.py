"""Exact path-dependent TreeSHAP for scikit-learn tree ensembles, on every core.

The classic TreeSHAP (Lundberg et al., 2020; what ``shap.TreeExplainer`` runs) spends
O(depth²) per leaf per row. Here the Shapley weights are written as a Beta integral
(Yu et al., "Linear TreeShap", 2022): a leaf ``l`` with unique path features ``F`` gives
feature ``i``

    v_l · (o_i − z_i) · ∫₀¹ Π_{j ∈ F, j ≠ i} (z_j (1 − t) + o_j t) dt

where ``z_j`` is the share of training cover that follows the path on feature ``j`` and
``o_j`` is 1 when the row follows it. The integrand is a polynomial of degree < |F|, so a
Gauss–Legendre rule with ⌈D/2⌉ nodes (D = most unique features on a path of the tree)
integrates it exactly. Products along the path are carried top-down and leaf sums
bottom-up, so each node costs O(nodes of the rule) per row: the values are the same as
TreeSHAP's (to floating-point rounding), several times faster, and the rows are split
across threads (the compiled kernel releases the GIL).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from flowscope._imports import try_import

numba = try_import("numba", "explain")

# Rows per task handed to a thread: large enough to amortise the scratch allocation.
_MIN_ROWS_PER_THREAD = 16


@dataclass
class FlatForest:
    """Every tree of an ensemble in flat arrays (nodes of tree ``t`` are
    ``starts[t]:starts[t + 1]``, in preorder, so a parent always comes before its child)."""

    starts: np.ndarray  # int64, trees + 1
    feature: np.ndarray  # int64 per node, -1 at leaves
    threshold: np.ndarray  # float64 per node
    missing_left: np.ndarray  # bool per node
    children_left: np.ndarray  # int64 per node, local index, -1 at leaves
    children_right: np.ndarray  # int64 per node
    cover: np.ndarray  # float64 per node
    values: np.ndarray  # float64, nodes × value columns (leaf outputs, already scaled)
    output_of_tree: np.ndarray  # int64 per tree: the output column, or -1 for all columns
    n_outputs: int
    n_features: int


def threads() -> int:
    """The cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def flatten_sklearn_trees(
    trees: list[tuple[Any, float, int]],
    *,
    shares: bool,
    value_column: int | None,
    n_outputs: int,
    n_features: int,
) -> FlatForest:
    """Flatten fitted scikit-learn trees given as ``(tree_, scale, output)``.

    ``shares`` says the leaves hold class shares (a forest classifier); ``value_column``
    picks one column of them (binary: the positive class), None keeps every column
    (multiclass forests, one output per class, with ``output`` -1). Leaf values are
    multiplied by ``scale`` (1 / number of trees for a forest, the learning rate for
    gradient boosting).
    """
    starts = [0]
    parts: dict[str, list[np.ndarray]] = {
        key: [] for key in ("feature", "threshold", "missing", "left", "right", "cover", "values")
    }
    outputs = []
    for tree, scale, output in trees:
        left = tree.children_left.astype(np.int64)
        right = tree.children_right.astype(np.int64)
        internal = left >= 0
        index = np.arange(len(left))
        if np.any(left[internal] <= index[internal]) or np.any(right[internal] <= index[internal]):
            raise ValueError("tree nodes are not in preorder")
        raw = np.asarray(tree.value, dtype=np.float64)[:, 0, :]
        if shares:  # normalised again: older scikit-learn stored class counts
            totals = raw.sum(axis=1, keepdims=True)
            raw = np.divide(raw, totals, out=np.zeros_like(raw), where=totals > 0)
        values = raw[:, [value_column]] if value_column is not None else raw
        missing = getattr(tree, "missing_go_to_left", np.zeros(len(left), dtype=bool))
        parts["feature"].append(np.where(internal, tree.feature, -1).astype(np.int64))
        parts["threshold"].append(tree.threshold.astype(np.float64))
        parts["missing"].append(np.asarray(missing, dtype=bool))
        parts["left"].append(left)
        parts["right"].append(right)
        parts["cover"].append(tree.weighted_n_node_samples.astype(np.float64))
        parts["values"].append(values * scale)
        outputs.append(output)
        starts.append(starts[-1] + len(left))
    return FlatForest(
        starts=np.asarray(starts, dtype=np.int64),
        feature=np.concatenate(parts["feature"]),
        threshold=np.concatenate(parts["threshold"]),
        missing_left=np.concatenate(parts["missing"]),
        children_left=np.concatenate(parts["left"]),
        children_right=np.concatenate(parts["right"]),
        cover=np.concatenate(parts["cover"]),
        values=np.ascontiguousarray(np.concatenate(parts["values"])),
        output_of_tree=np.asarray(outputs, dtype=np.int64),
        n_outputs=n_outputs,
        n_features=n_features,
    )


@numba.njit(cache=True, nogil=True)
def prepare(starts, left, right, feature, cover):
    n = len(feature)
    parent = np.full(n, -1, np.int64)
    is_left = np.zeros(n, np.bool_)
    zeta = np.ones(n, np.float64)
    prev = np.full(n, -1, np.int64)
    unique = np.zeros(n, np.int64)
    depth_of_tree = np.zeros(len(starts) - 1, np.int64)
    for t in range(len(starts) - 1):
        base = starts[t]
        for local in range(starts[t + 1] - base):
            node = base + local
            if left[node] >= 0:
                parent[base + left[node]] = local
                parent[base + right[node]] = local
                is_left[base + left[node]] = True
        for local in range(1, starts[t + 1] - base):
            node = base + local
            p = parent[node]
            f = feature[base + p]
            ratio = cover[node] / cover[base + p] if cover[base + p] > 0 else 0.0
            a = p
            while a > 0 and feature[base + parent[base + a]] != f:
                a = parent[base + a]
            if a > 0:
                prev[node] = a
                zeta[node] = zeta[base + a] * ratio
                unique[node] = unique[base + p]
            else:
                zeta[node] = ratio
                unique[node] = unique[base + p] + 1
            if unique[node] > depth_of_tree[t]:
                depth_of_tree[t] = unique[node]
    return parent, is_left, zeta, prev, depth_of_tree


@numba.njit(cache=True, nogil=True)
def shap_rows(
    X,
    starts,
    feature,
    threshold,
    missing_left,
    values,
    output_of_tree,
    parent,
    is_left,
    zeta,
    prev,
    rule_start,
    rule_t,
    rule_w,
    n_outputs,
    max_nodes,
    max_rule,
):
    rows, n_features = X.shape
    width = values.shape[1]
    phi = np.zeros((rows, n_features, n_outputs))
    product = np.empty((max_nodes, max_rule))
    inverse = np.empty((max_nodes, max_rule))
    coef = np.empty((max_nodes, max_rule))
    sums = np.empty((max_nodes, max_rule, width))
    follows = np.empty(max_nodes, np.bool_)
    inverse_rest = 1.0 / (1.0 - rule_t)
    for r in range(rows):
        for t in range(len(starts) - 1):
            base = starts[t]
            n = starts[t + 1] - base
            q0 = rule_start[t]
            nq = rule_start[t + 1] - q0
            for q in range(nq):
                product[0, q] = 1.0
            follows[0] = True
            # top-down: the path polynomial at each node, at the rule's points
            for c in range(1, n):
                node = base + c
                p = parent[node]
                split = feature[base + p]
                x = X[r, split]
                go_left = missing_left[base + p] if np.isnan(x) else x <= threshold[base + p]
                a = prev[node]
                follow = go_left == is_left[node]
                if a >= 0:
                    follow = follow and follows[a]
                follows[c] = follow
                z = zeta[node]
                if follow:
                    for q in range(nq):
                        tq = rule_t[q0 + q]
                        f = z * (1.0 - tq) + tq
                        inv = 1.0 / f
                        inverse[c, q] = inv
                        coef[c, q] = rule_w[q0 + q] * (1.0 - z) * inv
                        back = inverse[a, q] if a >= 0 else 1.0
                        product[c, q] = product[p, q] * f * back
                else:
                    # an unfollowed edge: f = z (1 - t), inverted without a division per point
                    inv_z = 1.0 / z if z > 0.0 else 0.0
                    for q in range(nq):
                        f = z * (1.0 - rule_t[q0 + q])
                        inv = inv_z * inverse_rest[q0 + q]
                        inverse[c, q] = inv
                        coef[c, q] = -rule_w[q0 + q] * z * inv
                        back = inverse[a, q] if a >= 0 else 1.0
                        product[c, q] = product[p, q] * f * back
            # bottom-up: leaf sums, and each edge's share of them; a left child (p + 1 in
            # preorder) comes last among its siblings, so the right one starts the sum
            out = output_of_tree[t]
            for c in range(n - 1, 0, -1):
                node = base + c
                if feature[node] < 0:
                    for q in range(nq):
                        for k in range(width):
                            sums[c, q, k] = values[node, k] * product[c, q]
                p = parent[node]
                i = feature[base + p]
                a = prev[node]
                first = not is_left[node]
                for q in range(nq):
                    d = coef[c, q]
                    if a >= 0:
                        d -= coef[a, q]
                    for k in range(width):
                        target = out if out >= 0 else k
                        phi[r, i, target] += sums[c, q, k] * d
                        if first:
                            sums[p, q, k] = sums[c, q, k]
                        else:
                            sums[p, q, k] += sums[c, q, k]
    return phi


@dataclass
class PreparedForest:
    forest: FlatForest
    arrays: tuple[np.ndarray, ...]
    rule_start: np.ndarray
    rule_t: np.ndarray
    rule_w: np.ndarray
    base_values: np.ndarray
    max_nodes: int
    max_rule: int
    max_unique_depth: int


def prepare_forest(forest: FlatForest) -> PreparedForest:
    """Row-independent work: parents, cover shares, repeated features, quadrature rules and
    the expected value (the base value) of the ensemble."""
    parent, is_left, zeta, prev, depth_of_tree = prepare(
        forest.starts,
        forest.children_left,
        forest.children_right,
        forest.feature,
        forest.cover,
    )
    rule_start = [0]
    points: list[np.ndarray] = []
    weights: list[np.ndarray] = []
    for depth in depth_of_tree:
        count = max(1, (int(depth) + 1) // 2)
        nodes, node_weights = np.polynomial.legendre.leggauss(count)
        points.append((nodes + 1.0) / 2.0)
        weights.append(node_weights / 2.0)
        rule_start.append(rule_start[-1] + count)
    base = np.zeros(forest.n_outputs)
    leaf = forest.feature < 0
    for t in range(len(forest.starts) - 1):
        part = slice(forest.starts[t], forest.starts[t + 1])
        root_cover = forest.cover[forest.starts[t]]
        share = np.where(leaf[part], forest.cover[part] / root_cover, 0.0)
        expected = share @ forest.values[part]
        if forest.output_of_tree[t] >= 0:
            base[forest.output_of_tree[t]] += expected[0]
        else:
            base += expected
    sizes = np.diff(forest.starts)
    return PreparedForest(
        forest=forest,
        arrays=(parent, is_left, zeta, prev),
        rule_start=np.asarray(rule_start, dtype=np.int64),
        rule_t=np.concatenate(points),
        rule_w=np.concatenate(weights),
        base_values=base,
        max_nodes=int(sizes.max()),
        max_rule=int(np.diff(rule_start).max()),
        max_unique_depth=int(depth_of_tree.max()) if len(depth_of_tree) else 0,
    )


def tree_shap(prepared: PreparedForest, X: np.ndarray, n_threads: int | None = None) -> np.ndarray:
    """SHAP values ``rows × features × outputs`` of the prepared forest for ``X`` (the
    model's own input matrix), computed on ``n_threads`` threads (default: every core)."""
    forest = prepared.forest
    # scikit-learn compares float32 inputs with float64 thresholds; do the same.
    data = np.ascontiguousarray(np.asarray(X, dtype=np.float32).astype(np.float64))
    parent, is_left, zeta, prev = prepared.arrays

    def run(chunk: np.ndarray) -> np.ndarray:
        return shap_rows(
            chunk,
            forest.starts,
            forest.feature,
            forest.threshold,
            forest.missing_left,
            forest.values,
            forest.output_of_tree,
            parent,
            is_left,
            zeta,
            prev,
            prepared.rule_start,
            prepared.rule_t,
            prepared.rule_w,
            forest.n_outputs,
            prepared.max_nodes,
            prepared.max_rule,
        )

    workers = min(n_threads or threads(), max(1, len(data) // _MIN_ROWS_PER_THREAD))
    if workers <= 1:
        return run(data)
    # Interleaved chunks (a few per thread) keep the threads busy to the end.
    chunks = np.array_split(np.arange(len(data)), workers * 4)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(lambda rows: run(data[rows]), chunks))
    return np.concatenate(parts, axis=0)
