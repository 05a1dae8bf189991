"""Figures of the comparison report page, built from the report's JSON (the dict of
:func:`flowscope.reports.compare_experiment`: ``charts`` says what to plot, ``table.rows``
holds the values): pure functions, no browser needed. They draw what the report file draws
as images (:mod:`flowscope.reports.comparison_charts`), interactive: the metric per run,
each varying parameter against it, parallel coordinates; and the winner's confusion matrix
and the parameter importances.

Above :data:`~flowscope.reports.comparison_charts.MAX_POINTS` scored runs a chart of runs
draws an evenly spaced sample of the ranking, the best run always in it, and says so; a
category's box is still computed from every run. Run names, parameter names and values go
into a figure HTML-escaped: Plotly reads a few tags in its text (``<b>``, ``<a href>``) and
shows entities as the characters they stand for, so a name reads exactly as written.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from flowscope.analysis.param_kinds import ParamAxis
from flowscope.reports.comparison_charts import MAX_BARS, MAX_POINTS
from flowscope.reports.sampling import evenly_spaced
from flowscope.web.charts import _figure, confusion_figure
from flowscope.web.study_charts import importance_figure

__all__ = ["report_figures"]

BEST = "#b3261e"
POINT = "#2457c5"
_PANEL_COLUMNS = 3
_JITTER = 0.18


def report_figures(data: Mapping[str, Any]) -> dict[str, go.Figure]:
    """Every chart of the report page by name: ``metric``, ``params`` and ``parallel``
    (when a parameter varies), ``importances`` (when the insights ranked the parameters)
    and ``confusion`` (when the best run logged its confusion matrix)."""
    charts = data["charts"]
    rows = data["table"]["rows"][: data["counts"]["scored"]]
    label = charts["metric_per_run"]["label"]
    direction = data["metric"]["direction"]
    figures = {"metric": metric_figure(rows, label, direction)}
    if charts["params"]:
        axes = [ParamAxis.from_dict(axis) for axis in charts["params"]]
        figures["params"] = params_figure(rows, axes, label)
    if charts["parallel"]:
        axes = [ParamAxis.from_dict(axis) for axis in charts["parallel"]["axes"]]
        figures["parallel"] = parallel_figure(rows, axes, label, direction)
    insights = data["insights"]
    if insights["importances"]:
        shares = {_text(name): share for name, share in insights["importances"].items()}
        figures["importances"] = importance_figure({"importances": {insights["evaluator"]: shares}})
    if data["best"]["confusion"]:
        figures["confusion"] = confusion_figure(data["best"]["confusion"])
    return figures


def metric_figure(rows: Sequence[Mapping[str, Any]], label: str, direction: str) -> go.Figure:
    """The score of every run, best first: a bar per run with its name up to
    :data:`MAX_BARS` runs, the ranked curve beyond; the best run in red."""
    scores = _floats([row["score"] for row in rows])
    title = _text(f"{label} per run, best first ({direction}imum wins)")
    if len(rows) <= MAX_BARS:
        positions = np.arange(len(rows))
        names = [_name(row) for row in rows]
        figure = _figure(
            title,
            height=max(320, 22 * len(rows) + 110),
            showlegend=False,
            xaxis={"title": {"text": _text(label)}, "range": _padded(scores)},
            yaxis={"tickvals": positions, "ticktext": names, "autorange": "reversed"},
        )
        figure.add_bar(
            x=scores,
            y=positions,
            orientation="h",
            name=_text(label),
            marker={"color": [BEST if index == 0 else POINT for index in positions]},
            hovertext=names,
            hovertemplate="%{hovertext}<br>%{x:.6g}<extra></extra>",
        )
        return figure
    shown = evenly_spaced(len(rows), MAX_POINTS)
    figure = _figure(
        _thinned(title, len(rows)),
        xaxis={"title": {"text": "rank"}},
        yaxis={"title": {"text": _text(label)}},
        legend={"orientation": "h", "y": -0.2},
    )
    figure.add_scatter(
        x=shown + 1,
        y=scores[shown],
        mode="lines",
        name="runs",
        line={"color": POINT},
        hovertext=[_name(rows[index]) for index in shown],
        hovertemplate="rank %{x}: %{hovertext}<br>%{y:.6g}<extra></extra>",
    )
    figure.add_scatter(
        x=[1], y=scores[:1], mode="markers", name="best run", marker={"color": BEST, "size": 9}
    )
    return figure


def params_figure(
    rows: Sequence[Mapping[str, Any]], axes: Sequence[ParamAxis], label: str
) -> go.Figure:
    """Each varying parameter against the score, a panel each: a box per value and the
    runs as points for a categorical parameter, a scatter for a numeric one; the best
    run in red."""
    from plotly.subplots import make_subplots

    columns = min(len(axes), _PANEL_COLUMNS)
    lines = math.ceil(len(axes) / columns)
    figure = make_subplots(
        rows=lines,
        cols=columns,
        shared_yaxes=True,
        subplot_titles=[_text(axis.name) for axis in axes],
        horizontal_spacing=0.05,
        vertical_spacing=0.3 / lines if lines > 1 else 0.0,
    )
    scores = _floats([row["score"] for row in rows])
    shown = evenly_spaced(len(rows), MAX_POINTS)
    rng = np.random.default_rng(0)  # the same jitter for the same runs
    for index, axis in enumerate(axes):
        cell = {"row": index // columns + 1, "col": index % columns + 1}
        values = [axis.value(row) for row in rows]
        if axis.kind == "categorical":
            at = {choice: position for position, choice in enumerate(axis.choices)}
            positions = np.asarray([at[value] for value in values], dtype=float)
            figure.add_trace(_boxes(positions, scores, axis.name), **cell)
            xs = positions[shown] + rng.uniform(-_JITTER, _JITTER, shown.size)
            best_x = positions[0]
            figure.update_xaxes(
                tickvals=list(range(len(axis.choices))),
                ticktext=[_text(choice) for choice in axis.choices],
                **cell,
            )
        else:
            xs = _floats(values)[shown]
            best_x = float(values[0])
        figure.add_scatter(
            x=xs,
            y=scores[shown],
            mode="markers",
            name=_text(axis.name),
            marker={"size": 6, "color": POINT, "opacity": 0.6},
            hovertext=[
                f"{_name(rows[i])}<br>{_text(axis.name)} = {_text(values[i])}" for i in shown
            ],
            hovertemplate="%{hovertext}<br>%{y:.6g}<extra></extra>",
            **cell,
        )
        figure.add_scatter(
            x=[best_x],
            y=scores[:1],
            mode="markers",
            name="best run",
            marker={"size": 10, "color": BEST},
            hovertext=[_name(rows[0])],
            hovertemplate="best: %{hovertext}<br>%{y:.6g}<extra></extra>",
            **cell,
        )
    figure.update_yaxes(title={"text": _text(label)}, col=1)
    figure.update_layout(
        title={"text": _thinned(_text(f"{label} by parameter"), len(rows))},
        showlegend=False,
        height=max(340, 300 * lines + 60),
        margin={"l": 60, "r": 20, "t": 70, "b": 45},
        template="plotly_white",
        font={"size": 12},
    )
    return figure


def _boxes(positions: np.ndarray, scores: np.ndarray, name: str) -> go.Box:
    """One box per value from every run's score (quartiles, whiskers at the furthest
    score within 1.5 interquartile ranges), as matplotlib and Plotly draw them."""
    stats: dict[str, list[float]] = {
        key: [] for key in ("x", "q1", "median", "q3", "lowerfence", "upperfence")
    }
    for position in np.unique(positions):
        group = scores[positions == position]
        q1, median, q3 = np.percentile(group, [25, 50, 75])
        reach = 1.5 * (q3 - q1)
        found = {
            "x": float(position),
            "q1": float(q1),
            "median": float(median),
            "q3": float(q3),
            "lowerfence": float(group[group >= q1 - reach].min()),
            "upperfence": float(group[group <= q3 + reach].max()),
        }
        for key, value in found.items():
            stats[key].append(value)
    return go.Box(
        **stats,
        name=_text(name),
        width=0.5,
        fillcolor="rgba(36, 87, 197, 0.08)",
        line={"color": "#59636e", "width": 1},
        hoverinfo="skip",
    )


def parallel_figure(
    rows: Sequence[Mapping[str, Any]], axes: Sequence[ParamAxis], label: str, direction: str
) -> go.Figure:
    """Parallel coordinates: an axis per parameter (categories in the report's order) and
    one for the score, each run a line coloured by its score, the best in yellow."""
    shown = evenly_spaced(len(rows), MAX_POINTS)
    chosen = [rows[index] for index in shown]
    dimensions = []
    for axis in axes:
        values = [axis.value(row) for row in chosen]
        if axis.kind == "categorical":
            at = {choice: position for position, choice in enumerate(axis.choices)}
            dimensions.append(
                {
                    "label": _text(axis.name),
                    "values": _floats([at[value] for value in values]),
                    "tickvals": list(range(len(axis.choices))),
                    "ticktext": [_text(choice) for choice in axis.choices],
                }
            )
        else:
            dimensions.append({"label": _text(axis.name), "values": _floats(values)})
    scores = _floats([row["score"] for row in chosen])
    dimensions.append({"label": _text(label), "values": scores})
    # room above the plot for the axis names Parcoords writes over its top
    margin = {"l": 60, "r": 60, "t": 90, "b": 30}
    figure = _figure(_thinned("parallel coordinates", len(rows)), height=420, margin=margin)
    figure.add_trace(
        go.Parcoords(
            dimensions=dimensions,
            line={
                "color": scores,
                "colorscale": "Viridis",
                "reversescale": direction == "min",  # the best run is yellow either way
                "showscale": True,
            },
        )
    )
    return figure


def _text(value: Any) -> str:
    return html.escape(str(value), quote=False)


def _name(row: Mapping[str, Any]) -> str:
    return _text(row.get("run_name") or row["run_id"])


def _floats(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=float)


def _thinned(title: str, count: int) -> str:
    if count <= MAX_POINTS:
        return title
    return f"{title} ({MAX_POINTS:,} of {count:,} runs, evenly spaced)"


def _padded(scores: np.ndarray) -> list[float]:
    """An axis range a little wider than the scores (down to 0 when the margin would
    cross it), so that close scores still look different."""
    low, high = float(scores.min()), float(scores.max())
    pad = (high - low) * 0.1 or abs(high) * 0.05 or 0.05
    start = low - pad
    return [start if start > 0 else min(0.0, start), high + pad]
