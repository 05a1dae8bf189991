"""Reports as markdown or self-contained HTML: run comparison, model versions and deployed
models."""

from flowscope.reports.comparison import CompareQuery, compare_experiment, compare_task
from flowscope.reports.comparison_output import (
    markdown_zip,
    render_comparison,
    write_comparison,
)
from flowscope.reports.deployed import deployed_report, render_deployed
from flowscope.reports.versions import render_versions, versions_report

__all__ = [
    "CompareQuery",
    "compare_experiment",
    "compare_task",
    "deployed_report",
    "markdown_zip",
    "render_comparison",
    "render_deployed",
    "render_versions",
    "versions_report",
    "write_comparison",
]
