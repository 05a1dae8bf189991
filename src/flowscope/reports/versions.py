"""The model-versions report: every version's stage, description, metrics and parameters,
the metrics side by side, the champion-versus-challenger tests, and why each promotion
happened, as markdown or as one self-contained HTML page."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowscope.mlflow_client import client_for
from flowscope.registry.tags import DECISION_TAG, REASON_TAG
from flowscope.reports._render import number, render, when

if TYPE_CHECKING:
    from flowscope.config import Settings

__all__ = ["render_versions", "versions_report"]

_SUMMARY_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
_PER_CLASS = ("precision_", "recall_", "f1_")
_REGRESSION = ("rmse", "mae", "r2", "mape")
_PARAM_KEYS = ("model_type", "target", "problem", "test_size", "dataset", "dataset.rows")


def versions_report(settings: Settings, model: str) -> dict[str, Any]:
    """The report's data for ``model``: ``{"model", "generated", "versions", "metrics",
    "comparisons", "aliases", "decisions"}``, versions newest first. An unknown model is a
    :class:`~flowscope.errors.NotFoundError`."""
    from flowscope.registry.history import decision_history
    from flowscope.registry.versions import model_detail

    detail = model_detail(settings, model)
    history = decision_history(settings, model)
    client = client_for(settings)
    versions = []
    for v in detail["versions"]:
        decision = _json(v["tags"].get(DECISION_TAG))
        params, note = _run_params_and_note(client, v["run_id"])
        versions.append(
            {
                "version": v["version"],
                "stage": v["lifecycle"] or "untracked",
                "aliases": v["aliases"],
                # the version's own description, else what its run was described as
                "description": v["description"] or note,
                "created": v["created"],
                "run_id": v["run_id"],
                "metrics": v["metrics"],
                "params": params,
                "reason": v["tags"].get(REASON_TAG),
                "decided_by": decision.get("by"),
                "decided_at": decision.get("at"),
                "policy_digest": decision.get("policy_digest"),
                "gates": decision.get("gates", {}),
                "comparison": decision.get("comparison"),
            }
        )
    comparisons = [_comparison_row(v) for v in versions if (v["comparison"] or {}).get("verdict")]
    return {
        "model": detail["model"],
        "tracking_uri": settings.tracking_uri,
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": versions,
        "metrics": _metric_rows(versions),
        "comparisons": comparisons,
        "aliases": history["aliases"],
        "decisions": history["decisions"],
    }


def _json(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _run_params_and_note(client: Any, run_id: str | None) -> tuple[dict[str, str], str | None]:
    from mlflow.exceptions import MlflowException

    if not run_id:
        return {}, None
    try:
        data = client.get_run(run_id).data
    except MlflowException:
        return {}, None
    params = {
        k: v for k, v in sorted(data.params.items()) if k in _PARAM_KEYS or k.startswith("model.")
    }
    return params, data.tags.get("mlflow.note.content")


def _metric_rows(versions: list[dict[str, Any]]) -> list[str]:
    present = {name for v in versions for name in v["metrics"]}
    rows = [m for m in _SUMMARY_METRICS if m in present]
    for prefix in _PER_CLASS:
        rows += sorted(m for m in present if m.startswith(prefix) and "_at_" not in m)
    rows += [m for m in _REGRESSION if m in present]
    return rows


def _comparison_row(version: dict[str, Any]) -> dict[str, Any]:
    comparison = version["comparison"]
    verdict = comparison["verdict"]
    mcnemar = verdict.get("mcnemar") or {}
    return {
        "challenger": version["version"],
        "champion": comparison["champion"],
        "metric": verdict["metric"],
        "challenger_value": verdict["value_a"],
        "champion_value": verdict["value_b"],
        "difference": verdict["difference"],
        "ci": [verdict["ci_low"], verdict["ci_high"]],
        "p_bootstrap": verdict["p_bootstrap"],
        "p_mcnemar": mcnemar.get("p_value"),
        "rows": verdict["n"],
        "basis": comparison.get("basis"),
        "passed": comparison.get("passed"),
    }


def render_versions(data: dict[str, Any], fmt: str = "markdown") -> str:
    """The report as ``markdown`` or ``html`` (one self-contained page)."""
    name = data["model"]["name"]
    labels = [f"v{v['version']}" for v in data["versions"]]
    return render(
        "versions",
        fmt,
        {
            "title": f"Model versions: {name}",
            "subtitle": f"Generated {data['generated']} from {data['tracking_uri']}",
            "data": data,
            "version_headers": _VERSION_HEADERS,
            "version_rows": _version_rows(data),
            "metric_headers": ["Metric", *labels],
            "metric_rows": _metric_table_rows(data),
            "comparison_headers": _COMPARISON_HEADERS,
            "comparison_rows": _comparison_table_rows(data),
            "timeline_headers": _TIMELINE_HEADERS,
            "timeline_rows": _timeline_rows(data),
        },
    )


def _version_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            f"v{v['version']}",
            v["stage"],
            " ".join(f"@{a}" for a in v["aliases"]),
            when(v["created"]),
            v["description"] or "",
            v["params"].get("model_type", ""),
        ]
        for v in data["versions"]
    ]


def _metric_table_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [
        [metric, *(number(v["metrics"].get(metric)) for v in data["versions"])]
        for metric in data["metrics"]
    ]


def _comparison_table_rows(data: dict[str, Any]) -> list[list[Any]]:
    return [
        [
            f"v{c['challenger']} vs v{c['champion']}",
            c["metric"],
            number(c["challenger_value"]),
            number(c["champion_value"]),
            f"{c['difference']:+.4f}",
            f"[{c['ci'][0]:+.4f}, {c['ci'][1]:+.4f}]",
            number(c["p_bootstrap"], 3),
            number(c["p_mcnemar"], 3),
            c["rows"],
            "promoted" if c["passed"] else "stays out",
        ]
        for c in data["comparisons"]
    ]


_VERSION_HEADERS = ["Version", "Stage", "Aliases", "Created", "Description", "Model type"]
_COMPARISON_HEADERS = [
    "Challenger vs champion",
    "Metric",
    "Challenger",
    "Champion",
    "Difference",
    "CI",
    "Bootstrap p",
    "McNemar p",
    "Rows",
    "Outcome",
]
_TIMELINE_HEADERS = ["Alias", "Version", "Since", "Until", "By", "Why"]


def _timeline_rows(data: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for alias, spans in data["aliases"].items():
        for span in spans:
            since = when(span["since"]) if span["since"] else "(before the record)"
            until = when(span["until"]) if span["until"] else "now"
            who = span["by"] or ""
            rows.append([f"@{alias}", f"v{span['version']}", since, until, who, span["reason"]])
    return rows
