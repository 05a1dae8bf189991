"""Predicting in real Chromium from a real ``flowscope ui`` process: one record from the
form generated from the signature, a file of rows uploaded and its predictions downloaded,
and both predictions found on the model's Inference tab."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.servers import dashboard_server
from tests.web.churn import FEATURES, MODEL, TARGET, Churn
from tests.web.conftest import screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def dashboard(churn: Churn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = dashboard_server(
        tmp_path_factory.mktemp("predict-server"), churn.settings.tracking_uri
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _run_id(page: Any, selector: str) -> str:
    href = page.locator(selector).get_attribute("href")
    assert href and href.startswith("/runs/")
    return str(href.removeprefix("/runs/"))


def test_predict_one_record_and_a_file_then_see_both_runs(
    page: Any, churn: Churn, tmp_path: Path
) -> None:
    page.goto("/models")
    listed = page.locator("#models tbody tr", has=page.get_by_role("link", name=MODEL, exact=True))
    listed.get_by_role("link", name="Predict").click()
    page.wait_for_selector("#single-form")
    assert page.locator("#ref").input_value() == "@champion"

    # one record: the form starts from typical values; change two of them
    page.get_by_label("spend", exact=True).fill("85.5")
    page.get_by_label("plan", exact=True).select_option("basic")
    page.get_by_label("region", exact=True).select_option("north")
    page.get_by_label("tenure", exact=True).fill("")  # missing: the pipeline imputes it
    page.locator("#predict-one").click()
    page.wait_for_selector("#single-result")
    predicted = page.locator("#predicted-class").inner_text().strip()
    assert predicted in ("no", "yes")
    shares = page.locator("#probabilities tbody tr")
    assert shares.count() == 2
    assert shares.first.locator("td").first.inner_text() == predicted  # most likely first
    record = {"tenure": float("nan"), "spend": 85.5, "plan": "basic", "region": "north"}
    expected = churn.pipeline.predict_proba(pd.DataFrame([record]))[0]
    assert predicted == ["no", "yes"][int(expected.argmax())]
    single_run = _run_id(page, "#single a[href^='/runs/']")
    screenshot(page, "predict-single")

    # a file of rows, with the label kept and a cell a spreadsheet would run
    rows = churn.frame.iloc[300:330].copy()
    rows[TARGET] = rows[TARGET].astype(object)
    rows.iloc[0, rows.columns.get_loc(TARGET)] = '=HYPERLINK("x")'
    upload = tmp_path / "to-score.csv"
    rows.to_csv(upload, index=False)
    page.set_input_files("#batch-file", str(upload))
    page.locator("#predict-file").click()
    page.wait_for_selector("#batch-rows")
    assert page.locator("#batch-count").inner_text() == "30"
    assert page.locator("#batch-rows tbody tr").count() == 20
    batch_run = _run_id(page, "#batch-result a[href^='/runs/']")
    screenshot(page, "predict-batch")

    with page.expect_download() as info:
        page.locator("#download-predictions").click()
    download = info.value
    assert download.suggested_filename == "predictions-to-score.csv"
    lines = list(csv.DictReader(io.StringIO(Path(download.path()).read_text())))
    assert len(lines) == 30
    assert lines[0][TARGET] == '\'=HYPERLINK("x")'
    assert [float(line["spend"]) for line in lines] == rows["spend"].tolist()
    expected_labels = churn.pipeline.predict(rows[FEATURES]).tolist()
    assert [line["prediction"] for line in lines] == expected_labels

    # both predictions are inference runs on the model's Inference tab
    page.goto(f"/models/{MODEL}/predict")
    page.locator("#inference-link").click()
    page.wait_for_selector("#windows")
    for run_id, kind in ((single_run, "single"), (batch_run, "batch")):
        row = page.locator("#windows tbody tr", has=page.locator(f"a[href='/runs/{run_id}']"))
        assert row.count() == 1
        assert row.locator("td").nth(1).inner_text().startswith(kind)
    screenshot(page, "predict-inference")
    assert page.problems == []
