"""The deployed-model report: how the version behind ``MODEL@ALIAS`` does on a test set,
its accuracy (or regression errors) and its latency per sample, with the latency
distribution drawn as a PNG embedded in the page.

Latency is the wall time of one ``predict`` call on a one-row frame, as a service answering
single requests pays it, measured after one warm-up call (the first call pays for lazy
initialisation) on at most ``max_latency_rows`` rows.
"""

from __future__ import annotations

import base64
import io
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.mlflow_client import client_for
from flowscope.registry.uris import ModelRef
from flowscope.reports._render import number, render

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.config import Settings

__all__ = ["deployed_report", "render_deployed"]

_PERCENTILES = (50, 90, 95, 99)


def deployed_report(
    settings: Settings,
    ref: str,
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    max_latency_rows: int = 500,
) -> dict[str, Any]:
    """Evaluate the version ``ref`` (``MODEL@ALIAS``) points at on ``frame``: its metrics on
    every row and its per-sample latency; ``target`` defaults to the one its training run
    used. Returns the report's data, the latency histogram as base64 PNG included."""
    from mlflow.exceptions import MlflowException

    from flowscope.registry.version_model import downloaded_model
    from flowscope.tracking.models import load_model

    parsed = ModelRef.parse(ref, versions=False)
    name, alias = parsed.name, str(parsed.alias)
    client = client_for(settings)
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        raise NotFoundError(f"model {name!r} has no alias @{alias}") from None
    params = client.get_run(version.run_id).data.params if version.run_id else {}
    target = target or params.get("target")
    if not target:
        raise FlowscopeError("name the target column with --target")
    if target not in frame.columns:
        raise FlowscopeError(f"the test data has no target column {target!r}")
    label = f"{name} v{version.version}"
    with downloaded_model(settings, version.run_id, version.source or "", label) as path:
        model = load_model(path)
    features, truth = frame.drop(columns=[target]), frame[target].to_numpy()
    try:
        predicted = model.predict(features)
    except (ValueError, KeyError, TypeError) as exc:
        raise FlowscopeError(f"{label} cannot predict this data: {exc}") from None
    latencies = _latencies(model, features, max_latency_rows)
    stats = {
        "mean_ms": float(latencies.mean()),
        **{f"p{q}_ms": float(np.percentile(latencies, q)) for q in _PERCENTILES},
        "max_ms": float(latencies.max()),
    }
    return {
        "model": name,
        "alias": alias,
        "version": int(version.version),
        "run_id": version.run_id,
        "rows": len(frame),
        "target": target,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "metrics": _metrics(model, truth, predicted),
        "latency": {"samples": len(latencies), **stats},
        "latency_ms": latencies.tolist(),
        "histogram_png": _histogram(latencies, f"{name}@{alias} (v{version.version})"),
    }


def _latencies(model: Any, features: pd.DataFrame, limit: int) -> np.ndarray:
    if len(features) == 0:
        raise FlowscopeError("the test data has no rows")
    rows = features.iloc[: max(1, limit)]
    model.predict(rows.iloc[[0]])  # warm-up
    timings = []
    for index in range(len(rows)):
        one = rows.iloc[[index]]
        started = time.perf_counter()
        model.predict(one)
        timings.append((time.perf_counter() - started) * 1000.0)
    return np.asarray(timings)


def _metrics(model: Any, truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    from sklearn import metrics

    if hasattr(model, "classes_"):
        return {
            "accuracy": float(metrics.accuracy_score(truth, predicted)),
            "f1": float(metrics.f1_score(truth, predicted, average="macro", zero_division=0)),
        }
    return {
        "rmse": float(metrics.root_mean_squared_error(truth, predicted)),
        "mae": float(metrics.mean_absolute_error(truth, predicted)),
        "r2": float(metrics.r2_score(truth, predicted)),
    }


def _histogram(latencies: np.ndarray, title: str) -> str:
    # A bare Figure draws with Agg without touching pyplot's global backend or state.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 3.2), dpi=100)
    axes = figure.subplots()
    axes.hist(latencies, bins=min(40, max(5, len(latencies) // 5)), color="#0969da")
    for q, style in ((50, "-"), (95, "--"), (99, ":")):
        value = float(np.percentile(latencies, q))
        axes.axvline(value, color="#cf222e", linestyle=style, label=f"p{q} {value:.2f} ms")
    axes.set_xlabel("latency per sample (ms)")
    axes.set_ylabel("samples")
    axes.set_title(title)
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def render_deployed(data: dict[str, Any], fmt: str = "html") -> str:
    """The report as one self-contained ``html`` page or as ``markdown`` (the figure as a
    data URI image, which most markdown viewers show)."""
    return render(
        "deployed",
        fmt,
        {
            "title": f"Deployed model: {data['model']}@{data['alias']} (v{data['version']})",
            "subtitle": (
                f"{data['rows']} rows, target {data['target']}; generated {data['generated']}"
            ),
            "data": data,
            "metric_rows": [[k, number(v)] for k, v in data["metrics"].items()],
            "latency_rows": [[k, number(v, 3)] for k, v in data["latency"].items()],
            "image": f"data:image/png;base64,{data['histogram_png']}",
        },
    )
