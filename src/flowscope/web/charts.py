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
    """The confusion matrix as a heatmap, true labels down, predicted across, each class
    shown by its name where training named it."""
    from flowscope.tracking.evaluation import class_display, table_class_names

    names = table_class_names(confusion)
    labels = [
        class_display(label, name) for label, name in zip(confusion["labels"], names, strict=True)
    ]
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
    import numpy as np

    axes = []
    for dimension in dimensions:
        values = list(dimension["values"])
        if all(isinstance(v, int | float) or v is None for v in values):
            # arrays, not lists: Plotly checks a list item by item (seconds at 10,000 runs)
            axes.append({"label": dimension["label"], "values": np.asarray(values, dtype=float)})
        else:
            categories = sorted({str(v) for v in values})
            index = {category: position for position, category in enumerate(categories)}
            axes.append(
                {
                    "label": dimension["label"],
                    "values": np.asarray([index[str(v)] for v in values], dtype=float),
                    "tickvals": list(range(len(categories))),
                    "ticktext": categories,
                }
            )
    figure = _figure(f"parameters and {metric}", height=380)
    figure.add_trace(
        go.Parcoords(
            dimensions=axes,
            line={
                "color": np.asarray(list(color), dtype=float),
                "colorscale": "Viridis",
                "showscale": True,
            },
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


# -- explanations (the run page's Explain section) ---------------------------------------


def explain_importance_figure(
    importance: Mapping[str, Sequence[Sequence[Any]]], space: str
) -> go.Figure:
    """Mean |SHAP value| per feature (``{class: [[feature, value], ...]}``), a bar per
    class, the most important feature on top."""
    order: list[str] = []
    for pairs in importance.values():
        order.extend(str(feature) for feature, _ in pairs if str(feature) not in order)
    figure = _figure(
        "feature importance",
        barmode="group",
        height=max(320, 24 * len(order) + 100),
        xaxis={"title": {"text": f"mean |SHAP value| ({space})"}},
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": order[::-1]},
    )
    for output, pairs in importance.items():
        figure.add_bar(
            x=[value for _, value in pairs],
            y=[str(feature) for feature, _ in pairs],
            orientation="h",
            name=str(output),
        )
    return figure


def explain_beeswarm_figure(beeswarm: Mapping[str, Any], space: str) -> go.Figure:
    """Each row's SHAP value per feature as a dot, coloured by the feature's value (rank
    scaled 0..1: blue low, red high); the most important feature on top."""
    import numpy as np

    points = list(beeswarm["points"])
    figure = _figure(
        f"SHAP values ({beeswarm['output']})",
        height=max(320, 30 * len(points) + 100),
        showlegend=False,
        xaxis={"title": {"text": f"SHAP value ({space})"}, "zeroline": True},
        yaxis={
            "tickvals": list(range(len(points))),
            "ticktext": [point["feature"] for point in reversed(points)],
            "range": [-0.7, len(points) - 0.3],
        },
    )
    rng = np.random.default_rng(0)
    for position, point in enumerate(reversed(points)):
        count = len(point["shap"])
        figure.add_scatter(
            x=point["shap"],
            y=(position + rng.uniform(-0.3, 0.3, count)).tolist(),
            mode="markers",
            name=point["feature"],
            marker={
                "size": 5,
                "color": point["colour"] if point["colour"] is not None else "#888",
                "colorscale": "RdBu",
                "reversescale": True,
                "cmin": 0,
                "cmax": 1,
                "showscale": position == 0 and point["colour"] is not None,
                "colorbar": {
                    "title": {"text": "value"},
                    "tickvals": [0, 1],
                    "ticktext": ["low", "high"],
                },
            },
            hovertemplate=f"{point['feature']}: %{{x:.4g}}<extra></extra>",
        )
    return figure


def explain_dependence_figure(dependence: Mapping[str, Any], space: str) -> go.Figure:
    """One feature's SHAP value against its value."""
    feature = dependence["feature"]
    figure = _figure(
        f"dependence on {feature} ({dependence['output']})",
        xaxis={
            "title": {"text": feature},
            **({"type": "category"} if dependence.get("categorical") else {}),
        },
        yaxis={"title": {"text": f"SHAP value ({space})"}},
    )
    figure.add_scatter(x=dependence["x"] or [], y=dependence["shap"], mode="markers", name=feature)
    return figure


def explain_waterfall_figure(waterfall: Mapping[str, Any], space: str) -> go.Figure:
    """From the base value to one row's output, feature by feature."""
    steps = list(waterfall["steps"])
    labels = [
        step["feature"] if step["value"] is None else f"{step['feature']} = {step['value']}"
        for step in steps
    ]
    figure = _figure(
        f"row {waterfall['row']}: {waterfall['output_value']:.4g} ({waterfall['output']}, {space})",
        height=max(320, 28 * len(steps) + 140),
        showlegend=False,
        yaxis={"type": "category", "autorange": "reversed"},
        xaxis={"title": {"text": space}},
    )
    figure.add_trace(
        go.Waterfall(
            orientation="h",
            y=["base value", *labels, "output"],
            x=[waterfall["base_value"], *[step["shap"] for step in steps], 0.0],
            measure=["absolute", *["relative"] * len(steps), "total"],
            name="SHAP",
        )
    )
    return figure


def explain_figures(data: Mapping[str, Any]) -> dict[str, go.Figure]:
    """The Explain section's charts, when the run has an explanation."""
    explain = data.get("explain")
    if not explain:
        return {}
    space = explain["summary"].get("output_space") or ""
    figures = {
        "explain_importance": explain_importance_figure(explain["importance"], space),
        "explain_beeswarm": explain_beeswarm_figure(explain["beeswarm"], space),
        "explain_dependence": explain_dependence_figure(explain["dependence"], space),
    }
    if explain.get("waterfall"):
        figures["explain_waterfall"] = explain_waterfall_figure(explain["waterfall"], space)
    return figures


def importance_comparison_figure(importances: Mapping[str, Any]) -> go.Figure:
    """Mean |SHAP| per feature, a bar group per run: which features each model leans on."""
    figure = _figure(
        "feature importance (mean |SHAP|)", barmode="group", height=420, xaxis={"type": "category"}
    )
    for label, values in importances["runs"].items():
        figure.add_bar(x=list(importances["features"]), y=list(values), name=label)
    return figure
