"""Matplotlib figures for the evaluation artifacts.

Figures are built as ``matplotlib.figure.Figure`` objects, never through pyplot: nothing is
registered in pyplot's global figure list (so nothing leaks across calls) and no backend is
selected, which leaves a notebook's inline backend alone; ``savefig`` renders with Agg.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# Scatter plots of more points than this are thinned evenly: the picture is the same and
# rendering 100k markers costs seconds per figure.
_MAX_POINTS = 5000
# Past this many classes cell annotations overlap and become unreadable.
_MAX_ANNOTATED_CLASSES = 25


def _figure(width: float = 5.5, height: float = 4.5) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _thin(*arrays: np.ndarray) -> list[np.ndarray]:
    step = max(1, int(np.ceil(len(arrays[0]) / _MAX_POINTS)))
    return [array[::step] for array in arrays]


def confusion_figure(matrix: np.ndarray, labels: Sequence[Any], *, normalized: bool) -> Figure:
    size = min(4.0 + 0.4 * len(labels), 16.0)
    figure = _figure(size + 1.0, size)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", vmin=0, vmax=1 if normalized else None)
    figure.colorbar(image, ax=axes)
    ticks = np.arange(len(labels))
    names = [str(label) for label in labels]
    axes.set_xticks(ticks, names, rotation=45 if len(labels) > 4 else 0, ha="right")
    axes.set_yticks(ticks, names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix" + (" (row-normalised)" if normalized else ""))
    if len(labels) <= _MAX_ANNOTATED_CLASSES:
        middle = (matrix.max() or 1) / 2
        for (row, column), value in np.ndenumerate(matrix):
            text = f"{value:.2f}" if normalized else f"{int(value)}"
            color = "white" if value > middle else "black"
            axes.text(column, row, text, ha="center", va="center", color=color, fontsize=8)
    return figure


def roc_figure(curves: Sequence[tuple[str, Sequence[float], Sequence[float], float]]) -> Figure:
    """One ROC line per ``(name, fpr, tpr, auc)``."""
    figure = _figure()
    axes = figure.add_subplot()
    for name, fpr, tpr, area in curves:
        axes.plot(fpr, tpr, label=f"{name} (AUC {area:.3f})")
    axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC curve")
    axes.legend(loc="lower right", fontsize=8)
    return figure


def pr_figure(table: dict[str, Any]) -> Figure:
    figure = _figure()
    axes = figure.add_subplot()
    axes.step(
        table["recall"],
        table["precision"],
        where="post",
        label=f"AP {table['average_precision']:.3f}",
    )
    axes.axhline(table["prevalence"], linestyle="--", color="grey", linewidth=1, label="chance")
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_ylim(0, 1.02)
    axes.set_title("Precision-recall curve")
    axes.legend(loc="lower left", fontsize=8)
    return figure


def residuals_figure(y_true: np.ndarray, y_pred: np.ndarray) -> Figure:
    """Predicted against true (left) and residual against predicted (right)."""
    y_true, y_pred = _thin(y_true, y_pred)
    figure = _figure(10.0, 4.5)
    left, right = figure.subplots(1, 2)
    left.scatter(y_true, y_pred, s=8, alpha=0.5)
    low, high = float(min(y_true.min(), y_pred.min())), float(max(y_true.max(), y_pred.max()))
    left.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    left.set_xlabel("true")
    left.set_ylabel("predicted")
    left.set_title("Predicted vs true")
    right.scatter(y_pred, y_true - y_pred, s=8, alpha=0.5)
    right.axhline(0.0, linestyle="--", color="grey", linewidth=1)
    right.set_xlabel("predicted")
    right.set_ylabel("residual (true - predicted)")
    right.set_title("Residuals")
    return figure


def interval_figure(y_true: np.ndarray, lower: np.ndarray, upper: np.ndarray, name: str) -> Figure:
    """Rows ordered by the interval's midpoint, the band from lower to upper, and y_true as
    points: misses show as points outside the band."""
    order = np.argsort((lower + upper) / 2, kind="stable")
    y_true, lower, upper = _thin(y_true[order], lower[order], upper[order])
    positions = np.arange(len(y_true))
    figure = _figure(8.0, 4.5)
    axes = figure.add_subplot()
    axes.fill_between(positions, lower, upper, alpha=0.3, label=f"interval {name}")
    axes.scatter(positions, y_true, s=6, color="black", label="y_true")
    axes.set_xlabel("rows ordered by interval midpoint")
    axes.set_ylabel("target")
    axes.set_title("Prediction interval")
    axes.legend(loc="upper left", fontsize=8)
    return figure
