"""Reports as markdown or self-contained HTML: model versions and deployed models."""

from flowscope.reports.deployed import deployed_report, render_deployed
from flowscope.reports.versions import render_versions, versions_report

__all__ = ["deployed_report", "render_deployed", "render_versions", "versions_report"]
