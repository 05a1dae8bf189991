"""The model-versions report: data, markdown table, self-contained HTML."""

from __future__ import annotations

import re

import pytest

from flowscope.config import Settings
from flowscope.errors import NotFoundError
from flowscope.registry import load_policy, promote
from flowscope.reports import render_versions, versions_report
from tests.registry.helpers import HEART_POLICY, heart_versions, log_version, outcomes


@pytest.fixture
def promoted(settings: Settings) -> Settings:
    heart_versions(settings)
    policy = load_policy(HEART_POLICY)
    promote(settings, "heart-disease", policy)
    log_version(settings, "heart-disease", *outcomes(33, 28, 1, 2), description="challenger")
    promote(settings, "heart-disease", policy)
    return settings


def test_report_data_has_stages_rationale_and_the_comparison(promoted: Settings) -> None:
    data = versions_report(promoted, "heart-disease")
    stages = {v["version"]: v["stage"] for v in data["versions"]}
    assert stages == {3: "candidate", 2: "production", 1: "archived"}
    by_version = {v["version"]: v for v in data["versions"]}
    assert by_version[3]["description"] == "challenger"
    assert by_version[2]["reason"] == "passes the production gates; @production was free"
    assert by_version[2]["params"]["model_type"] == "logistic_regression"
    [comparison] = data["comparisons"]
    assert (comparison["challenger"], comparison["champion"]) == (3, 2)
    assert comparison["p_mcnemar"] == 0.5 and not comparison["passed"]
    assert data["metrics"][:4] == ["accuracy", "precision", "recall", "f1"]
    assert [s["version"] for s in data["aliases"]["production"]] == [2]


def test_markdown_has_the_version_and_metric_tables(promoted: Settings) -> None:
    text = render_versions(versions_report(promoted, "heart-disease"), "markdown")
    assert "| Version | Stage | Aliases | Created | Description | Model type |" in text
    assert "| Metric | v3 | v2 | v1 |" in text
    assert re.search(r"\| accuracy \| 0\.9508 \| 0\.918 \| 0\.7541 \|", text)
    assert "| v3 vs v2 | accuracy |" in text and "stays out" in text
    assert "**Rationale**" in text and "below the archive floor" in text


def test_html_is_self_contained(promoted: Settings) -> None:
    html = render_versions(versions_report(promoted, "heart-disease"), "html")
    assert html.startswith("<!doctype html>") and "<style>" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "<script" not in html and "<link" not in html
    assert 'class="badge production"' in html and "v3 vs v2" in html


def test_unknown_model_is_not_found(settings: Settings) -> None:
    with pytest.raises(NotFoundError):
        versions_report(settings, "nope")


def test_html_escapes_every_name_and_description(settings: Settings) -> None:
    # MLflow refuses "/" in model names, so the model's name carries another tag; the
    # version's description (its run's) carries the script.
    name = "<img src=x onerror=alert(1)>"
    log_version(settings, name, *outcomes(5, 5, 0, 0), description="<script>alert(1)</script>")
    html = render_versions(versions_report(settings, name), "html")
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<h1>Model versions: &lt;img src=x onerror=alert(1)&gt;</h1>" in html
    markdown = render_versions(versions_report(settings, name), "markdown")
    assert f"# Model versions: {name}" in markdown  # markdown is text: written as given
