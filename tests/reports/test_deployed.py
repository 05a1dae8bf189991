"""The deployed-model report: the alias's version, its accuracy and its latency."""

from __future__ import annotations

import base64
import re

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.registry.state import read_model_state
from flowscope.registry.version_model import load_version_model
from flowscope.reports import deployed_report, render_deployed
from tests.registry.helpers import log_version, outcomes


@pytest.fixture
def deployed(settings: Settings) -> tuple[Settings, pd.DataFrame]:
    log_version(settings, "heart", *outcomes(5, 5, 0, 0))
    MlflowClient(settings.tracking_uri).set_registered_model_alias("heart", "production", "1")
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"age": rng.normal(55, 9, 80), "chol": rng.normal(240, 40, 80)})
    frame["target"] = (frame["age"] > 57).astype(int)
    return settings, frame


def test_report_measures_the_aliased_version(deployed: tuple[Settings, pd.DataFrame]) -> None:
    settings, frame = deployed
    data = deployed_report(settings, "heart@production", frame, max_latency_rows=30)
    model = load_version_model(settings, read_model_state(settings, "heart").versions[1])
    expected = float((model.predict(frame[["age", "chol"]]) == frame["target"]).mean())
    assert data["version"] == 1 and data["rows"] == 80 and data["target"] == "target"
    assert data["metrics"]["accuracy"] == pytest.approx(expected)
    assert data["latency"]["samples"] == 30 == len(data["latency_ms"])
    assert 0 < data["latency"]["p50_ms"] <= data["latency"]["p99_ms"] <= data["latency"]["max_ms"]
    assert base64.b64decode(data["histogram_png"]).startswith(b"\x89PNG")


def test_html_embeds_the_plot_and_markdown_has_tables(
    deployed: tuple[Settings, pd.DataFrame],
) -> None:
    settings, frame = deployed
    data = deployed_report(settings, "heart@production", frame, max_latency_rows=10)
    html = render_deployed(data, "html")
    assert '<img alt="latency distribution of heart" src="data:image/png;base64,' in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html) and "<script" not in html
    markdown = render_deployed(data, "markdown")
    assert "| Metric | Value |" in markdown and "| p95_ms |" in markdown


def test_bad_references_and_data_are_refused(deployed: tuple[Settings, pd.DataFrame]) -> None:
    settings, frame = deployed
    with pytest.raises(FlowscopeError, match="is not MODEL@ALIAS"):
        deployed_report(settings, "heart", frame)
    with pytest.raises(NotFoundError, match="has no alias @staging"):
        deployed_report(settings, "heart@staging", frame)
    with pytest.raises(FlowscopeError, match="no target column 'target'"):
        deployed_report(settings, "heart@production", frame.drop(columns=["target"]))


def test_html_escapes_the_model_name_and_the_target(settings: Settings) -> None:
    name, target = "<img src=x onerror=alert(1)>", "<script>alert(1)</script>"
    log_version(settings, name, *outcomes(5, 5, 0, 0))
    MlflowClient(settings.tracking_uri).set_registered_model_alias(name, "production", "1")
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({"age": rng.normal(55, 9, 20), "chol": rng.normal(240, 40, 20)})
    frame[target] = (frame["age"] > 57).astype(int)
    data = deployed_report(settings, f"{name}@production", frame, target=target)
    html = render_deployed(data, "html")
    assert "<script" not in html and "<img src=x" not in html
    assert "<h1>Deployed model: &lt;img src=x onerror=alert(1)&gt;@production (v1)</h1>" in html
    assert "target &lt;script&gt;alert(1)&lt;/script&gt;;" in html
    assert 'alt="latency distribution of &lt;img src=x onerror=alert(1)&gt;"' in html
