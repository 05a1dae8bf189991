"""The model-versions report: every version's stage, description, metrics and parameters,
the metrics side by side, the champion-versus-challenger tests, and why each promotion
happened, as markdown or as one self-contained HTML page."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowscope.reports._html import Raw, badge, esc, md_table, number, page, table, when

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
    from flowscope.analysis.runs import client_for
    from flowscope.registry.history import decision_history
    from flowscope.registry.lifecycle import DECISION_TAG, REASON_TAG
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
    if fmt == "html":
        return _html(data)
    if fmt == "markdown":
        return _markdown(data)
    from flowscope.errors import FlowscopeError

    raise FlowscopeError(f"{fmt!r} is not a report format; use markdown or html")


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


def _timeline_rows(data: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for alias, spans in data["aliases"].items():
        for span in spans:
            since = when(span["since"]) if span["since"] else "(before the record)"
            until = when(span["until"]) if span["until"] else "now"
            who = span["by"] or ""
            rows.append([f"@{alias}", f"v{span['version']}", since, until, who, span["reason"]])
    return rows


def _markdown(data: dict[str, Any]) -> str:
    name = data["model"]["name"]
    out = [f"# Model versions: {name}", ""]
    out.append(f"Generated {data['generated']} from `{data['tracking_uri']}`.")
    if data["model"].get("description"):
        out += ["", data["model"]["description"]]
    out += ["", "## Versions", "", md_table(_VERSION_HEADERS, _version_rows(data))]
    labels = [f"v{v['version']}" for v in data["versions"]]
    out += ["", "## Metrics", "", md_table(["Metric", *labels], _metric_table_rows(data))]
    if data["comparisons"]:
        out += ["", "## Champion versus challenger", ""]
        out.append(md_table(_COMPARISON_HEADERS, _comparison_table_rows(data)))
    out += ["", "## Promotion history", ""]
    timeline = _timeline_rows(data)
    if timeline:
        out.append(md_table(["Alias", "Version", "Since", "Until", "By", "Why"], timeline))
    else:
        out.append("No promotion recorded yet (`flowscope promote MODEL --policy FILE`).")
    for v in data["versions"]:
        out += ["", f"### v{v['version']}: {v['stage']}", ""]
        if v["description"]:
            out += [v["description"], ""]
        if v["reason"]:
            out += [
                f"**Rationale** ({v['decided_at'] or ''}, by {v['decided_by'] or '?'}, "
                f"policy `{(v['policy_digest'] or '')[:12]}`): {v['reason']}",
                "",
            ]
        if v["params"]:
            out.append(md_table(["Parameter", "Value"], sorted(v["params"].items())))
    return "\n".join(out) + "\n"


def _html(data: dict[str, Any]) -> str:
    name = data["model"]["name"]
    parts = []
    if data["model"].get("description"):
        parts.append(f"<p>{esc(data['model']['description'])}</p>")
    rows = _version_rows(data)
    for row, version in zip(rows, data["versions"], strict=True):
        row[1] = Raw(badge(version["stage"]))
    parts += ["<h2>Versions</h2>", table(_VERSION_HEADERS, rows)]
    labels = [f"v{v['version']}" for v in data["versions"]]
    numeric = range(1, len(labels) + 1)
    parts += ["<h2>Metrics</h2>", table(["Metric", *labels], _metric_table_rows(data), numeric)]
    if data["comparisons"]:
        parts.append("<h2>Champion versus challenger</h2>")
        parts.append(table(_COMPARISON_HEADERS, _comparison_table_rows(data), range(2, 9)))
    parts.append("<h2>Promotion history</h2>")
    timeline = _timeline_rows(data)
    if timeline:
        parts.append(table(["Alias", "Version", "Since", "Until", "By", "Why"], timeline))
    else:
        parts.append("<p>No promotion recorded yet.</p>")
    for v in data["versions"]:
        parts.append(f"<h3>v{v['version']} {badge(v['stage'])}</h3>")
        if v["description"]:
            parts.append(f"<p>{esc(v['description'])}</p>")
        if v["reason"]:
            parts.append(
                f"<p><strong>Rationale</strong> ({esc(v['decided_at'])}, by "
                f"{esc(v['decided_by'])}, policy <code>{esc((v['policy_digest'] or '')[:12])}"
                f"</code>): {esc(v['reason'])}</p>"
            )
        gates = [
            [stage, g["gate"], number(g["value"]), Raw(_verdict(g["passed"]))]
            for stage, results in v["gates"].items()
            for g in results
        ]
        if gates:
            parts.append(table(["Rule", "Gate", "Value", "Result"], gates, (2,)))
        if v["params"]:
            parts.append(table(["Parameter", "Value"], sorted(v["params"].items())))
    subtitle = f"Generated {data['generated']} from {data['tracking_uri']}"
    return page(f"Model versions: {name}", "".join(parts), subtitle)


def _verdict(passed: bool) -> str:
    return '<span class="pass">pass</span>' if passed else '<span class="fail">fail</span>'
