"""The workbench's data page in real Chromium, served by a real ``flowscope ui`` process:
upload a CSV through the page, read its preview and profile, pick the target (the page
follows without a reload, a bad target explained in place) and find the train form."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.servers import dashboard_server
from tests.web.conftest import screenshot
from tests.web.datasets import customers

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("workbench-server")
    server = dashboard_server(root, f"sqlite:///{root / 'mlflow.db'}")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


def _card(page: Any, name: str) -> str:
    return str(page.locator(f"#profile-cards [data-name={name}]").inner_text())


def _choose_target(page: Any, column: str) -> None:
    """Pick ``column`` in the target list and wait for htmx to bring its view."""
    page.select_option("#target-select", column)
    page.wait_for_url(f"**target={column}**")
    page.wait_for_function(
        "(c) => document.querySelector('#target-select').value === c"
        " && !document.querySelector('.htmx-request, .htmx-settling')",
        arg=column,
    )


def test_upload_profile_target_and_train_form(page: Any, tmp_path: Path) -> None:
    frame = customers()
    path = tmp_path / "Customer churn.csv"
    frame.to_csv(path, index=False)
    expected = pd.read_csv(path)

    page.goto("/workbench")
    assert page.get_by_role("link", name="Workbench").count() == 1
    page.set_input_files("#upload-file", str(path))
    page.click("#upload-button")
    page.wait_for_url("**/workbench?dataset=*")
    page.wait_for_selector("#dataset-view")
    screenshot(page, "workbench-uploaded")

    # the profile and the preview, as pandas reads the file
    assert _card(page, "rows") == str(len(expected))
    assert _card(page, "columns") == str(expected.shape[1])
    assert _card(page, "duplicate_rows") == "2"
    assert _card(page, "missing_cells") == str(int(expected.isna().sum().sum()))
    assert page.locator("#preview tbody tr").count() == 20
    headers = page.locator("#preview thead th").all_inner_texts()
    assert headers == list(expected.columns)
    missing_ages = int(expected.head(20)["age"].isna().sum())
    age_cells = page.locator("#preview tbody tr td:nth-child(4)").all_inner_texts()
    assert age_cells.count("missing") == missing_ages > 0
    age_row = page.locator("#columns tr[data-column=age] td").all_inner_texts()
    assert age_row[1] == "float64" and age_row[2].startswith(str(expected["age"].isna().sum()))

    # the suggested target is the last column, with its class balance and the train form
    assert page.locator("#target-select").input_value() == "churned"
    balance = dict(
        row.split("\t")[:2] for row in page.locator("#class-balance tbody tr").all_inner_texts()
    )
    assert balance == {k: str(v) for k, v in expected["churned"].value_counts().items()}
    form = page.locator("#train-form")
    assert form.get_attribute("action") == "/workbench/train"
    assert page.locator("#train-form input[name=task]").input_value() == "customer-churn"

    # another target: the view follows in place, the form trains on it
    _choose_target(page, "city")
    cities = page.locator("#class-balance tbody tr td:first-child").all_inner_texts()
    assert cities == sorted(expected["city"].unique())
    assert page.locator("#train-form input[name=target]").input_value() == "city"
    assert _card(page, "problem") == "multiclass"
    boxes = page.locator("#train-form input[name=model_types]")
    assert boxes.count() >= 5 and "random_forest" in [
        boxes.nth(i).get_attribute("value") for i in range(boxes.count())
    ]
    screenshot(page, "workbench-target-city")

    # a numeric target makes a regression, with regressors to pick from
    _choose_target(page, "spend")
    assert _card(page, "problem") == "regression"
    assert page.locator("#target-summary").count() == 1
    values = page.locator("#train-form input[name=model_types]")
    assert "ridge" in [values.nth(i).get_attribute("value") for i in range(values.count())]

    # a constant column cannot be a target: the reason shows in place, no train form
    _choose_target(page, "region")
    error = page.locator("#target-error").inner_text()
    assert "target 'region' is constant" in error
    assert page.locator("#train-form").count() == 0
    assert page.locator("#preview tbody tr").count() == 20
    screenshot(page, "workbench-bad-target")
    # the one console error allowed is Chromium's note of the 400 that explained the target
    assert [p for p in page.problems if "status of 400" not in p] == []


def test_a_refused_upload_is_explained_on_the_page(page: Any, tmp_path: Path) -> None:
    path = tmp_path / "photo.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(32))
    page.goto("/workbench")
    page.set_input_files("#upload-file", str(path))
    page.click("#upload-button")
    page.wait_for_selector("#upload-error")
    assert page.locator("#upload-error").inner_text() == "photo.csv is not text: it is a PNG image"
    assert page.locator("#upload-form").count() == 1
    screenshot(page, "workbench-upload-error")
