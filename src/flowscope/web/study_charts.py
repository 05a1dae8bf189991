"""Figures of the study page, built from its JSON (the data objects of
:func:`flowscope.tuning.view.study_view`): pure functions, no browser and no Optuna needed.
They draw what Optuna's visualization module draws for a study: optimization history,
intermediate values, parallel coordinates, slices, a contour and parameter importances.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go

from flowscope.web.charts import _figure, parallel_figure

STATE_COLOURS = {
    "COMPLETE": "#2457c5",
    "PRUNED": "#c26a00",
    "FAIL": "#b3261e",
    "RUNNING": "#2f7d32",
}
_SLICE_COLUMNS = 3
# Every numeric series goes to Plotly as a NumPy array: Plotly validates a list item by
# item, and a study of 10,000 trials has tens of thousands of them per chart.


def history_figure(history: Mapping[str, Any], objective: str, maximize: bool) -> go.Figure:
    """Each complete trial's value and the best so far, by trial number."""
    figure = _figure(
        "optimization history",
        xaxis={"title": {"text": "trial"}},
        yaxis={"title": {"text": objective}},
        legend={"orientation": "h", "y": -0.2},
    )
    numbers = _floats(history["number"])
    figure.add_scatter(
        x=numbers,
        y=_floats(history["value"]),
        mode="markers",
        name=objective,
        marker={"size": 5, "color": STATE_COLOURS["COMPLETE"], "opacity": 0.6},
        hovertemplate="trial %{x}<br>%{y:.6g}<extra></extra>",
    )
    figure.add_scatter(
        x=numbers,
        y=_floats(history["best"]),
        mode="lines",
        line={"shape": "hv", "color": "#b3261e"},
        name=f"best so far ({'max' if maximize else 'min'})",
    )
    return figure


def intermediate_figure(intermediate: Mapping[str, Any]) -> go.Figure:
    """What each trial reported at each step, a line per trial coloured by its state."""
    shown, total = intermediate["shown"], intermediate["total"]
    title = "intermediate values" + (
        f" (latest {shown} of {total} trials)" if shown < total else ""
    )
    figure = _figure(
        title,
        showlegend=False,
        xaxis={"title": {"text": "step"}},
        yaxis={"title": {"text": intermediate["metric"]}},
    )
    for series in intermediate["trials"]:
        figure.add_scatter(
            x=_floats(series["steps"]),
            y=_floats(series["values"]),
            mode="lines",
            name=f"trial {series['number']}",
            line={"width": 1, "color": STATE_COLOURS.get(series["state"], "#888")},
            opacity=0.7,
            hovertemplate=f"trial {series['number']} ({series['state'].lower()})"
            "<br>step %{x}: %{y:.6g}<extra></extra>",
        )
    return figure


def study_parallel_figure(space: Mapping[str, Any], objective: str) -> go.Figure:
    """Parallel coordinates of the complete trials: the objective, then each parameter."""
    dimensions = [{"label": objective, "values": list(space["objective"])}]
    for param in space["params"]:
        values = list(param["values"])
        if param["log"] and all(v is None or (_is_number(v) and v > 0) for v in values):
            # parallel coordinates have no log axes: the axis shows log10 of the value
            values = [None if v is None else math.log10(v) for v in values]
            dimensions.append({"label": f"{param['name']} (log10)", "values": values})
        else:
            dimensions.append({"label": param["name"], "values": values})
    return parallel_figure(dimensions, list(space["objective"]), objective)


def slice_figure(space: Mapping[str, Any], objective: str) -> go.Figure:
    """The objective against each parameter, one panel per parameter, darker points for
    later trials."""
    from plotly.subplots import make_subplots

    params = list(space["params"])
    columns = min(len(params), _SLICE_COLUMNS) or 1
    rows = max(math.ceil(len(params) / columns), 1)
    figure = make_subplots(
        rows=rows,
        cols=columns,
        shared_yaxes=True,
        subplot_titles=[p["name"] for p in params],
        horizontal_spacing=0.04,
        vertical_spacing=0.12 if rows > 1 else 0.0,
    )
    numbers = _floats(space["numbers"])
    objective_values = _floats(space["objective"])
    for index, param in enumerate(params):
        row, column = index // columns + 1, index % columns + 1
        figure.add_scatter(
            x=_axis_values(param["values"], param["kind"] == "categorical"),
            y=objective_values,
            mode="markers",
            name=param["name"],
            marker={
                "size": 5,
                "color": numbers,
                "colorscale": "Blues",
                "showscale": index == 0,
                "colorbar": {"title": {"text": "trial"}},
                "line": {"width": 0.5, "color": "#6b7385"},
            },
            hovertemplate=f"{param['name']} %{{x}}<br>{objective} %{{y:.6g}}<extra></extra>",
            row=row,
            col=column,
        )
        if param["log"]:
            figure.update_xaxes(type="log", row=row, col=column)
        elif param["kind"] == "categorical":
            figure.update_xaxes(type="category", row=row, col=column)
    figure.update_yaxes(title={"text": objective}, col=1)
    figure.update_layout(
        title={"text": "slices"},
        showlegend=False,
        template="plotly_white",
        height=max(320, 280 * rows + 60),
        margin={"l": 50, "r": 20, "t": 60, "b": 40},
    )
    return figure


def contour_figure(
    contour: Mapping[str, Any], space: Mapping[str, Any], objective: str
) -> go.Figure:
    """The mean objective over a grid of the two chosen parameters, with the trials on it."""
    x_axis, y_axis = contour["x"], contour["y"]
    figure = _figure(
        f"contour of {x_axis['name']} and {y_axis['name']} (by {contour['chosen_by']})",
        height=420,
        xaxis=_contour_axis(x_axis),
        yaxis=_contour_axis(y_axis),
    )
    figure.add_contour(
        x=_axis_values(x_axis["ticks"], x_axis["categorical"]),
        y=_axis_values(y_axis["ticks"], y_axis["categorical"]),
        z=_floats(contour["z"]),
        connectgaps=True,
        colorscale="Blues",
        colorbar={"title": {"text": objective}},
        hovertemplate=f"{x_axis['name']} %{{x}}<br>{y_axis['name']} %{{y}}"
        f"<br>mean {objective} %{{z:.6g}}<extra></extra>",
        name=objective,
    )
    by_name = {param["name"]: param for param in space["params"]}
    xs, ys = by_name[x_axis["name"]]["values"], by_name[y_axis["name"]]["values"]
    figure.add_scatter(
        x=_axis_values(xs, x_axis["categorical"]),
        y=_axis_values(ys, y_axis["categorical"]),
        mode="markers",
        name="trials",
        marker={"size": 4, "color": "#1d2433", "opacity": 0.5},
        hoverinfo="skip",
    )
    return figure


def importance_figure(importances: Mapping[str, Any]) -> go.Figure:
    """Each evaluator's parameter importances, the most important parameter on top."""
    evaluators = {k: v for k, v in importances["importances"].items() if v}
    totals: dict[str, float] = {}
    for values in evaluators.values():
        for name, value in values.items():
            totals[name] = totals.get(name, 0.0) + value
    order = sorted(totals, key=lambda name: totals[name])
    figure = _figure(
        "parameter importances",
        barmode="group",
        height=max(320, 26 * len(order) * max(len(evaluators), 1) + 120),
        xaxis={"title": {"text": "importance (sums to 1)"}, "range": [0, 1]},
        yaxis={"type": "category", "categoryorder": "array", "categoryarray": order},
    )
    for evaluator, values in evaluators.items():
        figure.add_bar(
            x=[values.get(name, 0.0) for name in order],
            y=order,
            orientation="h",
            name=evaluator,
        )
    return figure


def study_figures(data: Mapping[str, Any]) -> dict[str, go.Figure]:
    """Every chart of the study page, keyed by name; those without data are left out."""
    objective = data["study"]["objective"] or "value"
    maximize = data["study"]["directions"] == ["maximize"]
    figures: dict[str, go.Figure] = {}
    if data["history"] and data["history"]["number"]:
        figures["history"] = history_figure(data["history"], objective, maximize)
    if data["intermediate"]["trials"]:
        figures["intermediate"] = intermediate_figure(data["intermediate"])
    space = data["space"]
    if space["params"] and space["objective"]:
        figures["parallel"] = study_parallel_figure(space, objective)
        figures["slices"] = slice_figure(space, objective)
    if data["contour"]:
        figures["contour"] = contour_figure(data["contour"], space, objective)
    importances = data["importances"]
    if importances and any(importances["importances"].values()):
        figures["importances"] = importance_figure(importances)
    return figures


def _contour_axis(axis: Mapping[str, Any]) -> dict[str, Any]:
    layout: dict[str, Any] = {"title": {"text": axis["name"]}}
    if axis["categorical"]:
        layout["type"] = "category"
    elif axis["log"]:
        layout["type"] = "log"
    return layout


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _floats(values: Any) -> np.ndarray:
    """Numbers (lists of them, for a grid) as a float array, None as NaN (a gap)."""
    return np.asarray(values, dtype=float)


def _axis_values(values: Any, categorical: bool) -> Any:
    if categorical:
        return [None if value is None else str(value) for value in values]
    return _floats(values)
