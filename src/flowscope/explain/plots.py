"""Static SHAP plots for the run's artifacts: a global importance bar chart and a beeswarm.

Figures are built on ``matplotlib.figure.Figure`` directly, never through ``pyplot``, so
that nothing is left in global state when training runs in threads or a server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from flowscope.explain.explanation import Explanation

_MAX_FEATURES = 15
_MAX_PANELS = 4


def bar_figure(explanation: Explanation, max_features: int = _MAX_FEATURES) -> Figure:
    """Mean |SHAP value| per feature, most important on top; one stacked segment per class
    for multiclass models."""
    from matplotlib.figure import Figure

    means = np.abs(explanation.values).mean(axis=0)  # features × outputs
    order = np.argsort(-means.sum(axis=1), kind="stable")[:max_features][::-1]
    labels = [explanation.features[j] for j in order]
    figure = Figure(figsize=(7, 0.35 * len(order) + 1.4))
    axes = figure.add_subplot()
    left = np.zeros(len(order))
    for k, output in enumerate(explanation.outputs):
        axes.barh(labels, means[order, k], left=left, label=output)
        left += means[order, k]
    axes.set_xlabel(f"mean |SHAP value| ({explanation.output_space})")
    axes.set_title("feature importance")
    if explanation.multiclass:
        axes.legend(title="class", fontsize="small")
    figure.tight_layout()
    return figure


def beeswarm_figure(explanation: Explanation, max_features: int = _MAX_FEATURES) -> Figure:
    """Every row's SHAP value per feature as a dot, coloured by the feature's value (low
    blue, high red; categories by code); one panel per class, at most four."""
    from matplotlib.figure import Figure

    panels = explanation.outputs[:_MAX_PANELS]
    means = np.abs(explanation.values).mean(axis=(0, 2))
    order = np.argsort(-means, kind="stable")[:max_features][::-1]
    colours = _colour_values(explanation, order)
    figure = Figure(figsize=(6.5 * len(panels), 0.38 * len(order) + 1.6))
    rng = np.random.default_rng(0)
    scatter = None
    for panel, output in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), panel + 1)
        # one scatter per panel, not per feature: drawing many collections is what costs
        xs = np.concatenate([explanation.values[:, j, panel] for j in order])
        ys = np.concatenate(
            [
                position + _swarm_offsets(explanation.values[:, j, panel], rng)
                for position, j in enumerate(order)
            ]
        )
        scatter = axes.scatter(
            xs,
            ys,
            c=np.concatenate([colours[int(j)] for j in order]),
            cmap="coolwarm",
            vmin=0.0,
            vmax=1.0,
            s=9,
            linewidths=0,
            rasterized=True,
        )
        axes.axvline(0.0, color="#999999", linewidth=0.8)
        axes.set_yticks(range(len(order)))
        axes.set_yticklabels([explanation.features[j] for j in order] if panel == 0 else [])
        axes.set_xlabel(f"SHAP value ({explanation.output_space})")
        axes.set_title(f"class {output}" if explanation.multiclass else "SHAP values")
    if scatter is not None:
        bar = figure.colorbar(scatter, ax=figure.axes, fraction=0.03, pad=0.02)
        bar.set_label("feature value (low → high)")
    return figure


def _colour_values(explanation: Explanation, order: np.ndarray) -> dict[int, np.ndarray]:
    """Each feature's values scaled to 0..1 by rank (robust to outliers); text by code."""
    import pandas as pd

    colours: dict[int, np.ndarray] = {}
    for j in order:
        column = explanation.data.iloc[:, j]
        if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
            numbers = column.astype(float)
        else:
            numbers = pd.Series(pd.factorize(column.astype(str))[0], dtype=float)
        ranked = numbers.rank(pct=True).to_numpy()
        colours[int(j)] = np.nan_to_num(ranked, nan=0.5)
    return colours


def _swarm_offsets(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vertical spread growing with how crowded each value's neighbourhood is."""
    if len(values) < 2:
        return np.zeros(len(values))
    span = float(values.max() - values.min()) or 1.0
    bins = np.floor((values - values.min()) / span * 50).astype(int)
    counts = np.bincount(bins)[bins]
    spread = 0.4 * counts / counts.max()
    return rng.uniform(-1.0, 1.0, len(values)) * spread
