"""The comparison report's data (:mod:`flowscope.reports.comparison`) as a document: one
self-contained HTML page with its charts embedded, Markdown with its charts written beside
it as PNG files, the table of runs as CSV, or the data as JSON.

The HTML and Markdown list at most :data:`TABLE_ROWS` runs (the best ones; 10,000 rows
would weigh megabytes), the CSV every one; :func:`write_comparison` writes the CSV beside an
HTML or Markdown file and links it, and :func:`markdown_zip` packs those files as one zip
(what the dashboard hands out). The same data gives the same bytes.
"""

from __future__ import annotations

import base64
import io
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowscope._output import to_csv, to_json
from flowscope.errors import FlowscopeError
from flowscope.reports._render import number, render, when

__all__ = ["FORMATS", "TABLE_ROWS", "markdown_zip", "render_comparison", "write_comparison"]

FORMATS = ("html", "markdown", "csv", "json")
TABLE_ROWS = 500
_CHART_TITLES = {
    "metric": "The metric per run",
    "params": "Each varying parameter against the metric",
    "parallel": "Parallel coordinates",
}


def render_comparison(
    data: Mapping[str, Any],
    fmt: str = "html",
    *,
    images: Mapping[str, str] | None = None,
    csv_name: str | None = None,
) -> str:
    """The report as ``fmt``: ``html`` (charts embedded), ``markdown`` (charts linked as
    ``images``, chart name → relative path; none drawn without it), ``csv`` (every run)
    or ``json`` (the data). ``csv_name`` is the CSV file written beside the document."""
    if fmt == "json":
        return to_json(data)
    if fmt == "csv":
        return runs_csv(data)
    if fmt not in ("html", "markdown"):
        raise FlowscopeError(f"{fmt!r} is not a report format; use {', '.join(FORMATS)}")
    if fmt == "html":
        from flowscope.reports.comparison_charts import chart_images

        sources = {
            name: "data:image/png;base64," + base64.b64encode(png).decode()
            for name, png in chart_images(data).items()
        }
    else:
        sources = dict(images or {})
    return render("comparison", fmt, _context(data, sources, csv_name, fmt))


def write_comparison(data: Mapping[str, Any], fmt: str, path: Path) -> list[Path]:
    """Write the report to ``path`` and, for HTML and Markdown, the full table beside it as
    ``<stem>-runs.csv`` (and for Markdown each chart as ``<stem>-<chart>.png``); returns
    every file written."""
    if fmt not in FORMATS:
        raise FlowscopeError(f"{fmt!r} is not a report format; use {', '.join(FORMATS)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _write(data, fmt, path)
    except OSError as exc:
        raise FlowscopeError(f"cannot write {exc.filename or path}: {exc.strerror}") from None


def markdown_zip(data: Mapping[str, Any], stem: str) -> bytes:
    """The Markdown report as :func:`write_comparison` writes it (``<stem>.md``, its charts
    and ``<stem>-runs.csv``) packed in one zip, the same bytes for the same data."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory(prefix="flowscope-report-") as folder:
        written = write_comparison(data, "markdown", Path(folder) / f"{stem}.md")
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in written:
                # a fixed date: the file's own would make every download different
                entry = zipfile.ZipInfo(path.name, date_time=(1980, 1, 1, 0, 0, 0))
                entry.external_attr = 0o644 << 16  # rw-r--r-- once unpacked
                archive.writestr(entry, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def _write(data: Mapping[str, Any], fmt: str, path: Path) -> list[Path]:
    written = []
    csv_name = None
    images: dict[str, str] = {}
    if fmt in ("html", "markdown"):
        csv_path = path.with_name(f"{path.stem}-runs.csv")
        csv_path.write_text(runs_csv(data), encoding="utf-8")
        written.append(csv_path)
        csv_name = csv_path.name
    if fmt == "markdown":
        from flowscope.reports.comparison_charts import chart_images

        for name, png in chart_images(data).items():
            image = path.with_name(f"{path.stem}-{name}.png")
            image.write_bytes(png)
            written.append(image)
            images[name] = image.name
    path.write_text(
        render_comparison(data, fmt, images=images, csv_name=csv_name), encoding="utf-8"
    )
    return [path, *written]


def runs_csv(data: Mapping[str, Any]) -> str:
    """Every run of the report, ranked, with the table's columns (and the score ranked by,
    when it is not the metric's last value) and the run's status and times."""
    keys = [column["key"] for column in data["table"]["columns"]]
    if data["metric"]["value"] != "last":
        keys.append("score")
    keys += ["status", "start_time", "end_time"]
    return to_csv(data["table"]["rows"], keys)


def _context(
    data: Mapping[str, Any], images: Mapping[str, str], csv_name: str | None, fmt: str
) -> dict[str, Any]:
    best = data["best"]
    table = data["table"]
    shown = table["rows"][:TABLE_ROWS]
    headers = [column["label"] for column in table["columns"]]
    keys = [column["key"] for column in table["columns"]]
    if data["metric"]["value"] != "last":
        headers.append(data["metric"]["label"])
        keys.append("score")
    numeric = [
        index
        for index, key in enumerate(keys)
        if key in ("rank", "time_s", "score") or key.startswith("metrics.")
    ]
    return {
        "title": f"Run comparison: {data['experiment']['name']}",
        "subtitle": _subtitle(data),
        "data": data,
        "best": best,
        "best_rows": _best_rows(data),
        "metric_rows": [[name, number(value)] for name, value in best["metrics"].items()],
        "param_rows": [[name, value] for name, value in sorted(best["params"].items())],
        "class_rows": _class_rows(best),
        "confusion": best["confusion"],
        "confusion_headers": [
            "true \\ predicted",
            *((best["confusion"] or {}).get("class_names") or []),
        ],
        "confusion_rows": [
            [name, *counts]
            for name, counts in zip(
                (best["confusion"] or {}).get("class_names") or [],
                (best["confusion"] or {}).get("counts") or [],
                strict=True,
            )
        ],
        "binary_rows": _binary_rows(best),
        "table_headers": headers,
        "table_rows": [[_cell(row.get(key), key) for key in keys] for row in shown],
        "table_numeric": numeric,
        "table_hidden": len(table["rows"]) - len(shown),
        "csv_name": csv_name,
        "images": [
            {"name": name, "title": _CHART_TITLES[name], "src": images[name]}
            for name in ("metric", "params", "parallel")
            if name in images
        ],
        "left_out": data["charts"]["left_out"],
        "insights": data["insights"],
        "importance_rows": [
            [name, f"{share:.3f}"] for name, share in data["insights"]["importances"].items()
        ],
        "group_headers": ["Value", "Runs", "Mean", "Std", "Min", "Max"],
        "group_rows": {
            param["name"]: [
                [
                    group["label"],
                    group["count"],
                    *(number(group[key]) for key in ("mean", "std", "min", "max")),
                ]
                for group in param["groups"]
            ]
            for param in data["insights"]["params"]
        },
        "next_steps": data["next_steps"],
    }


def _subtitle(data: Mapping[str, Any]) -> str:
    query, counts = data["query"], data["counts"]
    metric = data["metric"]
    parts = [
        f"{counts['runs']} {query['kind']} runs",
        f"ranked by {metric['label']} ({'higher' if metric['direction'] == 'max' else 'lower'}"
        " is better)",
    ]
    if query["where"]:
        parts.append(f"where {query['where']}")
    if counts["without_metric"]:
        parts.append(f"{counts['without_metric']} without the metric")
    parts.append(f"as of {when(data['as_of'])}" if data["as_of"] else "no run has started")
    return "; ".join(parts)


def _best_rows(data: Mapping[str, Any]) -> list[list[Any]]:
    best = data["best"]
    rows = [
        ["Run", best["run_name"] or ""],
        ["Run id", best["run_id"]],
        ["Experiment", f"{data['experiment']['name']} ({best['experiment_id']})"],
        [
            "Ranked by",
            f"{best['label']}, {'highest' if best['direction'] == 'max' else 'lowest'} wins",
        ],
        [best["label"], number(best["score"])],
        ["Training time (s)", number(best["training_time_s"])],
    ]
    for version in best["registered"]:
        aliases = " ".join(f"@{alias}" for alias in version["aliases"])
        rows.append(
            [
                "Registered",
                f"{version['name']} v{version['version']} "
                f"({version['state'] or 'no lifecycle state'}) {aliases} "
                f"{version['uri']}, dashboard {version['page']}".replace("  ", " "),
            ]
        )
    return rows


def _class_rows(best: Mapping[str, Any]) -> list[list[Any]]:
    return [
        [
            row["name"]
            if row["label"] is None or row["name"] == str(row["label"])
            else f"{row['name']} ({row['label']})",
            number(row["precision"]),
            number(row["recall"]),
            number(row["f1"]),
            "" if row["support"] is None else f"{row['support']:g}",
        ]
        for row in best["per_class"] or []
    ]


def _binary_rows(best: Mapping[str, Any]) -> list[list[Any]]:
    binary = (best["confusion"] or {}).get("binary")
    if not binary:
        return []
    return [
        ["positive class", binary["positive_name"]],
        ["true positives (TP)", binary["tp"]],
        ["true negatives (TN)", binary["tn"]],
        ["false positives (FP)", binary["fp"]],
        ["false negatives (FN)", binary["fn"]],
    ]


def _cell(value: Any, key: str) -> Any:
    if value is None:
        return ""
    if key == "time_s" and isinstance(value, float):
        return f"{value:.3g}"
    return number(value) if isinstance(value, float) else value
