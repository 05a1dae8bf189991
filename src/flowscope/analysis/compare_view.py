"""The compare page: 2 to 50 runs side by side, with the data for its charts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowscope.analysis.listing import main_metric
from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    from flowscope.analysis.query import RunStore
    from flowscope.config import Settings

_MAX_HISTORY_METRICS = 6


def parse_run_ids(text: str) -> list[str]:
    """``"a,b, c"`` → ``["a", "b", "c"]`` (order kept, duplicates dropped)."""
    ids: dict[str, None] = {}
    for part in text.replace(" ", ",").split(","):
        if part:
            ids.setdefault(part, None)
    return list(ids)


def compare_view(
    settings: Settings,
    store: RunStore,
    run_ids: list[str],
    *,
    metric: str = "",
    param: str = "",
    only_differences: bool = True,
) -> dict[str, Any]:
    """Params (differences only by default), metrics with the best per row, the metric
    histories, parallel-coordinates and scatter data, and pairwise significance."""
    from flowscope.analysis.compare import compare_runs

    rows = store.runs(run_ids)
    comparison = compare_runs(rows, only_differences=only_differences)
    metrics = sorted({key[8:] for row in rows for key in row if key.startswith("metrics.")})
    params = sorted({key[7:] for row in rows for key in row if key.startswith("params.")})
    chosen_metric = metric or main_metric(metrics) or ""
    if metric and metric not in metrics:
        raise FlowscopeError(f"none of these runs has the metric {metric!r}")
    varying = [entry["name"] for entry in comparison["params"] if entry.get("differs")]
    chosen_param = param or (varying[0] if varying else (params[0] if params else ""))
    if param and param not in params:
        raise FlowscopeError(f"none of these runs has the parameter {param!r}")
    labels = [str(row.get("run_name") or row["run_id"][:8]) for row in rows]
    data: dict[str, Any] = {
        **comparison,
        "run_ids": [row["run_id"] for row in rows],
        "labels": labels,
        "metric": chosen_metric,
        "param": chosen_param,
        "metric_names": metrics,
        "param_names": params,
        "only_differences": only_differences,
        "histories": _histories(settings, rows, labels, metrics),
        "parallel": {
            "dimensions": [
                {"label": name, "values": [_number(row.get(f"params.{name}")) for row in rows]}
                for name in varying[:12]
            ],
            "metric": [row.get(f"metrics.{chosen_metric}") for row in rows],
        },
        "scatter": {
            "x": [_number(row.get(f"params.{chosen_param}")) for row in rows],
            "y": [row.get(f"metrics.{chosen_metric}") for row in rows],
        },
        "importances": _importances(settings, rows, labels),
        "significance": None,
    }
    if chosen_metric:
        from flowscope.analysis.significance import significance_matrix

        try:
            data["significance"] = significance_matrix(settings, data["run_ids"], chosen_metric)
        except FlowscopeError as exc:
            data["significance"] = {"pairs": [], "skipped": [], "reason": exc.message}
    return data


def _importances(
    settings: Settings, rows: list[dict[str, Any]], labels: list[str]
) -> dict[str, Any] | None:
    """Mean |SHAP| per input feature of each run that logged explanations, side by side:
    ``{"features": [...], "runs": {label: [value per feature or None]}}``."""
    from flowscope.artifacts import read_json_artifact
    from flowscope.mlflow_client import client_for

    client = client_for(settings)
    found: dict[str, dict[str, float]] = {}
    for row, label in zip(rows, labels, strict=True):
        summary = read_json_artifact(client, row["run_id"], "explain/summary.json")
        if isinstance(summary, dict) and summary.get("mean_abs_shap_overall"):
            found[label] = summary["mean_abs_shap_overall"]
    if not found:
        return None
    totals: dict[str, float] = {}
    for values in found.values():
        for feature, value in values.items():
            totals[feature] = totals.get(feature, 0.0) + value
    features = sorted(totals, key=lambda feature: -totals[feature])[:20]
    return {
        "features": features,
        "runs": {label: [values.get(f) for f in features] for label, values in found.items()},
    }


def _number(value: Any) -> Any:
    """Params are strings in MLflow; numbers read back as numbers for the charts."""
    if not isinstance(value, str):
        return value
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


def _histories(
    settings: Settings, rows: list[dict[str, Any]], labels: list[str], metrics: list[str]
) -> dict[str, dict[str, list[list[float]]]]:
    """``{metric: {run label: [[step, value], ...]}}`` for metrics logged at many steps."""
    from flowscope.mlflow_client import client_for

    client = client_for(settings)
    stepped: list[str] = []
    first = rows[0]["run_id"]
    for name in metrics:
        if len(stepped) >= _MAX_HISTORY_METRICS:
            break
        if len(client.get_metric_history(first, name)) > 1:
            stepped.append(name)
    histories: dict[str, dict[str, list[list[float]]]] = {}
    for name in stepped:
        series = {}
        for row, label in zip(rows, labels, strict=True):
            points = sorted(
                client.get_metric_history(row["run_id"], name), key=lambda p: (p.step, p.timestamp)
            )
            if points:
                series[f"{label} ({row['run_id'][:6]})"] = [[p.step, p.value] for p in points]
        histories[name] = series
    return histories
