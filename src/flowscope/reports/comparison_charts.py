"""The comparison report's charts as PNG images, drawn with matplotlib from the report's
data (``charts`` says what to plot, ``table.rows`` holds the values).

Static images rather than Plotly: plotly.js alone is 4.8 MB, more than twice what the
report may weigh at 10,000 runs, and an image costs the same at 12 runs as at 10,000. The
pictures are the same bytes for the same data: strip-plot jitter comes from a seeded
generator, thinning keeps evenly spaced runs, and the PNG carries no date. Above
:data:`MAX_POINTS` scored runs the per-run and parameter charts draw an evenly spaced
sample of the ranking (:data:`PARALLEL_LINES` lines for the parallel coordinates, and
:data:`STRIP_POINTS` points of each category's strip, its box still drawn from every run),
the best run always in it, and say so in their title. Text is
drawn as written: run names and values are never read as matplotlib's mathtext.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from flowscope.analysis.param_kinds import ParamAxis
from flowscope.reports.sampling import evenly_spaced

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MAX_POINTS", "chart_images"]

# Most runs a chart draws: points of the ranked curve and of a scatter, points of one
# strip, lines of the parallel coordinates (more add weight to the PNG and nothing to see).
MAX_POINTS = 1000
STRIP_POINTS = 200
PARALLEL_LINES = 300
MAX_BARS = 40
_BEST = "#cf222e"
_POINT = "#0969da"
_NAME_CHARS = 40


def chart_images(data: Mapping[str, Any]) -> dict[str, bytes]:
    """Each chart of the report as PNG bytes, by name: ``metric``, ``params`` and
    ``parallel`` (the last two when a parameter varies)."""
    import matplotlib

    charts = data["charts"]
    rows = data["table"]["rows"][: data["counts"]["scored"]]
    with matplotlib.rc_context({"text.parse_math": False}):
        figures = {"metric": metric_figure(rows, charts["metric_per_run"], data["metric"])}
        if charts["params"]:
            axes = [ParamAxis.from_dict(axis) for axis in charts["params"]]
            figures["params"] = params_figure(rows, axes, charts["metric_per_run"]["label"])
        if charts["parallel"]:
            axes = [ParamAxis.from_dict(axis) for axis in charts["parallel"]["axes"]]
            figures["parallel"] = parallel_figure(rows, axes, data["metric"])
        return {name: _png(figure) for name, figure in figures.items()}


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _thinned(title: str, count: int, limit: int = MAX_POINTS) -> str:
    return title if count <= limit else f"{title} ({limit:,} of {count:,} runs, evenly spaced)"


def _short(text: Any) -> str:
    value = str(text)
    return value if len(value) <= _NAME_CHARS else value[: _NAME_CHARS - 1] + "…"


def metric_figure(
    rows: Sequence[Mapping[str, Any]], spec: Mapping[str, Any], metric: Mapping[str, Any]
) -> Figure:
    """The score of every run, best first: bars with run names up to :data:`MAX_BARS`
    runs, the ranked curve beyond."""
    from matplotlib.figure import Figure

    scores = np.asarray([row["score"] for row in rows], dtype=float)
    label = spec["label"]
    if len(rows) <= MAX_BARS:
        figure = Figure(figsize=(9, 1.2 + 0.28 * len(rows)), layout="constrained")
        axes = figure.add_subplot()
        names = [_short(row.get("run_name") or row["run_id"]) for row in rows]
        positions = np.arange(len(rows))
        colours = [_BEST if index == 0 else _POINT for index in positions]
        axes.barh(positions, scores, color=colours)
        axes.set_yticks(positions, names)
        axes.invert_yaxis()
        axes.set_xlabel(label)
        low, high = float(scores.min()), float(scores.max())
        pad = (high - low) * 0.1 or abs(high) * 0.05 or 0.05
        axes.set_xlim(low - pad if low >= 0 and low - pad > 0 else min(0.0, low - pad), high + pad)
    else:
        figure = Figure(figsize=(9, 3.6), layout="constrained")
        axes = figure.add_subplot()
        shown = evenly_spaced(len(rows), MAX_POINTS)
        axes.plot(shown + 1, scores[shown], color=_POINT, linewidth=1.2)
        axes.scatter([1], [scores[0]], color=_BEST, zorder=3, label="best run")
        axes.set_xlabel("rank")
        axes.set_ylabel(label)
        axes.legend(loc="best")
    axes.set_title(f"{label} per run, best first ({metric['direction']}imum wins)")
    axes.grid(axis="x" if len(rows) <= MAX_BARS else "y", alpha=0.3)
    return figure


def params_figure(
    rows: Sequence[Mapping[str, Any]], params: Sequence[ParamAxis], label: str
) -> Figure:
    """Each varying parameter against the score: box and strip plot for categorical
    values, scatter for numeric ones; the best run in red."""
    from matplotlib.figure import Figure

    columns = min(3, len(params))
    lines = -(-len(params) // columns)
    figure = Figure(figsize=(4.2 * columns, 3.4 * lines), layout="constrained")
    shown = evenly_spaced(len(rows), MAX_POINTS)
    scores = np.asarray([row["score"] for row in rows], dtype=float)
    title = _thinned(f"{label} by parameter", len(rows))
    figure.suptitle(title)
    for index, axis in enumerate(params):
        axes = figure.add_subplot(lines, columns, index + 1)
        if axis.kind == "categorical":
            _strip(axes, axis, [axis.value(row) for row in rows], scores)
        else:
            values = [axis.value(rows[i]) for i in shown]
            axes.scatter(values, scores[shown], s=12, alpha=0.6, color=_POINT)
        best = axis.value(rows[0])
        x = axis.choices.index(best) if axis.kind == "categorical" else best
        axes.scatter([x], [scores[0]], s=40, color=_BEST, zorder=3)
        axes.set_xlabel(_short(axis.name))
        axes.set_ylabel(label)
        axes.grid(axis="y", alpha=0.3)
    return figure


def _strip(axes: Axes, axis: ParamAxis, values: list[Any], scores: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    groups = [scores[[value == choice for value in values]] for choice in axis.choices]
    positions = np.arange(len(axis.choices))
    filled = [i for i, group in enumerate(groups) if group.size]
    axes.boxplot(
        [groups[i] for i in filled],
        positions=positions[filled],
        widths=0.5,
        showfliers=False,
        medianprops={"color": "#1f2328"},
    )
    for position, group in zip(positions, groups, strict=True):
        points = group[evenly_spaced(group.size, STRIP_POINTS)]
        jitter = rng.uniform(-0.18, 0.18, points.size)
        axes.scatter(position + jitter, points, s=10, alpha=0.5, color=_POINT)
    axes.set_xticks(positions, [_short(choice) for choice in axis.choices])
    if len(axis.choices) > 4:
        axes.tick_params(axis="x", labelrotation=30)


def parallel_figure(
    rows: Sequence[Mapping[str, Any]], params: Sequence[ParamAxis], metric: Mapping[str, Any]
) -> Figure:
    """Parallel coordinates: one axis per parameter and one for the score, each run a line
    coloured by its score, the best run drawn over the rest in red."""
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    shown = evenly_spaced(len(rows), PARALLEL_LINES)
    scores = np.asarray([row["score"] for row in rows], dtype=float)
    columns = [_positions(axis, [rows[i] for i in shown]) for axis in params]
    low, high = float(scores.min()), float(scores.max())
    span = high - low or 1.0
    columns.append((scores[shown] - low) / span)
    grid = np.column_stack(columns)  # one row per run, one column per axis, all in [0, 1]
    xs = np.arange(grid.shape[1])
    figure = Figure(figsize=(min(12.0, max(6.0, 1.5 * grid.shape[1])), 4.2), layout="constrained")
    axes = figure.add_subplot()
    segments = np.stack([np.column_stack([xs, line]) for line in grid[::-1]])
    colour = scores[shown][::-1] if metric["direction"] == "max" else -scores[shown][::-1]
    collection = LineCollection(list(segments), cmap="viridis", alpha=0.5, linewidths=0.7)
    collection.set_array(colour)
    axes.add_collection(collection)
    axes.plot(xs, grid[0], color=_BEST, linewidth=2.2, label="best run")
    for x, axis in enumerate(params):
        axes.axvline(x, color="#59636e", linewidth=0.8)
        for position, text in _ticks(axis):
            axes.text(x + 0.03, position, _short(text), fontsize=8, va="center")
    axes.axvline(float(xs[-1]), color="#59636e", linewidth=0.8)
    for position, value in ((0.0, low), (1.0, high)):
        axes.text(xs[-1] + 0.03, position, f"{value:.4g}", fontsize=8, va="center")
    labels = [_short(axis.name) for axis in params] + [_short(metric["label"])]
    axes.set_xticks(xs, labels)
    axes.set_xlim(-0.1, xs[-1] + 0.5)
    axes.set_ylim(-0.05, 1.05)
    axes.set_yticks([])
    axes.legend(loc="upper left", bbox_to_anchor=(0, -0.12), frameon=False)
    axes.set_title(_thinned("parallel coordinates", len(rows), PARALLEL_LINES))
    return figure


def _positions(axis: ParamAxis, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Each run's place on ``axis`` between 0 and 1."""
    if axis.kind == "categorical":
        slots = max(len(axis.choices) - 1, 1)
        index = {choice: i for i, choice in enumerate(axis.choices)}
        return np.asarray([index[axis.value(row)] / slots for row in rows], dtype=float)
    low, high = float(axis.low or 0.0), float(axis.high or 0.0)
    values = np.asarray([axis.value(row) for row in rows], dtype=float)
    return (values - low) / ((high - low) or 1.0)


def _ticks(axis: ParamAxis) -> list[tuple[float, str]]:
    if axis.kind == "categorical":
        slots = max(len(axis.choices) - 1, 1)
        step = max(1, len(axis.choices) // 12)  # at most a dozen labels on one axis
        return [(i / slots, choice) for i, choice in enumerate(axis.choices)][::step]
    return [(0.0, f"{axis.low:.4g}"), (1.0, f"{axis.high:.4g}")]
