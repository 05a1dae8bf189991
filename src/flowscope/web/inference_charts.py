"""Figures of the inference page, built from its JSON (the windows of
:func:`flowscope.serving.history.inference_history`): pure functions, no browser needed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from flowscope.web.charts import _figure

Window = Mapping[str, Any]


def _when(window: Window) -> Any:
    return window.get("end") or window.get("start") or window.get("run_id")


def volume_figure(windows: Sequence[Window]) -> go.Figure:
    """Predictions per window, one bar series per model version."""
    figure = _figure("predictions per window", barmode="stack", yaxis={"title": {"text": "rows"}})
    for version in sorted({str(w.get("version")) for w in windows}, key=_version_order):
        chosen = [w for w in windows if str(w.get("version")) == version]
        figure.add_bar(
            x=[_when(w) for w in chosen],
            y=[w["metrics"].get("samples", 0) for w in chosen],
            name=f"v{version}",
        )
    return figure


def confidence_figure(windows: Sequence[Window]) -> go.Figure:
    """Average confidence per window, with the window's lowest and highest."""
    figure = _figure("confidence", yaxis={"title": {"text": "confidence"}, "range": [0, 1.02]})
    x = [_when(w) for w in windows]
    for key, style in (
        ("max_confidence", {"dash": "dot", "color": "#9bb3e0"}),
        ("avg_confidence", {"color": "#2457c5"}),
        ("min_confidence", {"dash": "dot", "color": "#e09b9b"}),
    ):
        figure.add_scatter(
            x=x,
            y=[w["metrics"].get(key) for w in windows],
            mode="lines+markers",
            name=key.replace("_confidence", ""),
            line=style,
        )
    return figure


def class_figure(
    windows: Sequence[Window], classes: Sequence[str], names: Mapping[str, str] | None = None
) -> go.Figure:
    """Share of each predicted class per window, stacked to 100 %; a class is shown by its
    name where training named it (``names``: class key to name)."""
    from flowscope.tracking.evaluation import class_display

    figure = _figure(
        "class distribution", barmode="stack", yaxis={"title": {"text": "% of predictions"}}
    )
    x = [_when(w) for w in windows]
    for label in classes:
        shown = class_display(label, (names or {}).get(label, label))
        figure.add_bar(x=x, y=[w["percentages"].get(label, 0.0) for w in windows], name=shown)
    return figure


def latency_figure(windows: Sequence[Window]) -> go.Figure:
    """Request latency percentiles per window, in milliseconds."""
    figure = _figure("latency", yaxis={"title": {"text": "ms"}, "rangemode": "tozero"})
    x = [_when(w) for w in windows]
    for q in ("p50", "p95", "p99"):
        figure.add_scatter(
            x=x,
            y=[w["metrics"].get(f"latency_{q}_ms") for w in windows],
            mode="lines+markers",
            name=q,
        )
    return figure


def drift_figure(
    windows: Sequence[Window], features: Sequence[str], threshold: float = 0.2
) -> go.Figure:
    """PSI of each feature (rows) in each window (columns); the colour turns red past
    ``threshold``."""
    shown = [w for w in windows if w["drift"]]
    z = [[w["drift"].get(feature) for w in shown] for feature in features]
    top = max([value for row in z for value in row if value is not None] + [threshold * 2])
    figure = _figure(
        f"feature drift (PSI; above {threshold:g} is drift)",
        height=max(320, 22 * len(features) + 120),
        xaxis={"type": "category", "title": {"text": "window"}},
        yaxis={"automargin": True},
    )
    figure.add_heatmap(
        z=z,
        x=[f"{_when(w)} v{w.get('version')}" for w in shown],
        y=list(features),
        zmin=0,
        zmax=top,
        colorscale=[
            [0.0, "#f4f7fb"],
            [min(threshold / top, 1.0) * 0.5, "#cfe0f5"],
            [min(threshold / top, 1.0), "#f6c26b"],
            [1.0, "#c0392b"],
        ],
        colorbar={"title": {"text": "PSI"}},
        hovertemplate="%{y}<br>%{x}<br>PSI %{z:.3f}<extra></extra>",
    )
    return figure


def inference_figures(data: Mapping[str, Any]) -> dict[str, go.Figure]:
    """Every chart of the inference page, keyed by name; none without windows."""
    windows = data["windows"]
    if not windows:
        return {}
    figures = {"volume": volume_figure(windows), "latency": latency_figure(windows)}
    if data["classes"]:
        figures["confidence"] = confidence_figure(windows)
        figures["classes"] = class_figure(windows, data["classes"], data.get("class_names"))
    if data["features"]:
        figures["drift"] = drift_figure(windows, data["features"], data["drift_threshold"])
    return figures


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)
