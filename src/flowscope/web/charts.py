"""Plotly figures built from page data: pure functions, testable without a browser.

Each page's JSON holds the small data objects (histories, confusion counts, curve points);
the functions here turn those into figures, as Optuna's visualization module does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

_LAYOUT: dict[str, Any] = {
    "margin": {"l": 50, "r": 20, "t": 40, "b": 45},
    "height": 320,
    "template": "plotly_white",
    "font": {"size": 12},
}


def _figure(title: str, **layout: Any) -> go.Figure:
    return go.Figure(layout={**_LAYOUT, "title": {"text": title}, **layout})


def history_figure(metric: str, series: Mapping[str, Sequence[Sequence[float]]]) -> go.Figure:
    """One metric over steps, a line per run (``{run label: [[step, value], ...]}``)."""
    figure = _figure(metric, xaxis={"title": {"text": "step"}})
    for label, points in series.items():
        figure.add_scatter(
            x=[point[0] for point in points],
            y=[point[1] for point in points],
            mode="lines+markers" if len(points) < 30 else "lines",
            name=label,
        )
    return figure


def confusion_figure(confusion: Mapping[str, Any], *, normalized: bool = False) -> go.Figure:
    """The confusion matrix as a heatmap, true labels down, predicted across."""
    labels = [str(label) for label in confusion["labels"]]
    values = confusion["normalized" if normalized else "counts"]
    text = [[f"{v:.2f}" if normalized else str(v) for v in row] for row in values]
    figure = _figure(
        "confusion matrix" + (" (normalised by true class)" if normalized else ""),
        xaxis={"title": {"text": "predicted"}, "type": "category"},
        yaxis={"title": {"text": "true"}, "type": "category", "autorange": "reversed"},
    )
    figure.add_heatmap(
        z=values, x=labels, y=labels, text=text, texttemplate="%{text}", colorscale="Blues"
    )
    return figure


def roc_figure(roc: Mapping[str, Any]) -> go.Figure:
    figure = _figure(
        f"ROC curve (AUC {roc.get('auc', float('nan')):.3f})",
        xaxis={"title": {"text": "false positive rate"}, "range": [0, 1]},
        yaxis={"title": {"text": "true positive rate"}, "range": [0, 1.02]},
    )
    figure.add_scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", name="ROC")
    figure.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#999"}
    )
    return figure


def pr_figure(pr: Mapping[str, Any]) -> go.Figure:
    figure = _figure(
        f"precision-recall (AP {pr.get('average_precision', float('nan')):.3f})",
        xaxis={"title": {"text": "recall"}, "range": [0, 1]},
        yaxis={"title": {"text": "precision"}, "range": [0, 1.02]},
    )
    figure.add_scatter(x=pr["recall"], y=pr["precision"], mode="lines", name="PR")
    return figure


def run_figures(data: Mapping[str, Any]) -> dict[str, go.Figure]:
    """The run page's charts: metric histories and the evaluation's curves."""
    figures: dict[str, go.Figure] = {}
    label = data["run"]["run_name"] or data["run"]["run_id"]
    for metric, points in data["histories"].items():
        figures[f"history:{metric}"] = history_figure(metric, {label: points})
    evaluation = data.get("evaluation") or {}
    if evaluation.get("confusion_matrix"):
        figures["confusion"] = confusion_figure(evaluation["confusion_matrix"])
        figures["confusion_normalized"] = confusion_figure(
            evaluation["confusion_matrix"], normalized=True
        )
    if evaluation.get("roc_curve"):
        figures["roc"] = roc_figure(evaluation["roc_curve"])
    if evaluation.get("pr_curve"):
        figures["pr"] = pr_figure(evaluation["pr_curve"])
    return figures


def bar_figure(metric: str, labels: Sequence[str], values: Sequence[float | None]) -> go.Figure:
    """One metric across runs."""
    figure = _figure(metric, xaxis={"type": "category"})
    figure.add_bar(x=list(labels), y=list(values), name=metric)
    return figure


def parallel_figure(
    dimensions: Sequence[Mapping[str, Any]], color: Sequence[float | None], metric: str
) -> go.Figure:
    """Parallel coordinates: one axis per param (numeric or categorical) and the metric.

    ``dimensions`` is ``[{"label", "values"}]``; text values become categories on their axis.
    """
    axes = []
    for dimension in dimensions:
        values = list(dimension["values"])
        if all(isinstance(v, int | float) or v is None for v in values):
            axes.append({"label": dimension["label"], "values": values})
        else:
            categories = sorted({str(v) for v in values})
            axes.append(
                {
                    "label": dimension["label"],
                    "values": [categories.index(str(v)) for v in values],
                    "tickvals": list(range(len(categories))),
                    "ticktext": categories,
                }
            )
    figure = _figure(f"parameters and {metric}", height=380)
    figure.add_trace(
        go.Parcoords(
            dimensions=axes,
            line={"color": list(color), "colorscale": "Viridis", "showscale": True},
        )
    )
    return figure


def scatter_figure(
    param: str, metric: str, xs: Sequence[Any], ys: Sequence[float | None], labels: Sequence[str]
) -> go.Figure:
    figure = _figure(
        f"{metric} against {param}",
        xaxis={"title": {"text": param}},
        yaxis={"title": {"text": metric}},
    )
    figure.add_scatter(x=list(xs), y=list(ys), text=list(labels), mode="markers", name=metric)
    return figure
