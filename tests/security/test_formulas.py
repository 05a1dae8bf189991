"""Formula cells in every CSV export: runs, the comparison report (alone and in its zip),
predictions (the API, the page's download, the prediction service). A cell a spreadsheet
would run (``= + - @``, tab, CR first) gets OWASP's leading quote; numbers, negative ones
included, stay numbers."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any
from urllib.parse import quote

import pytest

from tests.security import payloads as p
from tests.security.conftest import (
    FEATURE,
    LABELS,
    MODEL,
    NOTE,
    Hostile,
    csv_rows,
    training_frame,
)

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
STARTS = ("=", "+", "-", "@", "\t", "\r")


def assert_formula_safe(text: str, *, expected: tuple[str, ...], numbers: tuple[str, ...]) -> None:
    """No cell starts a formula; each of ``expected`` is there neutralised ('...), and each
    of ``numbers`` is there as it is."""
    cells = [cell for row in csv_rows(text) for cell in row]
    running = [c for c in cells if c.startswith(STARTS) and not _NUMBER.fullmatch(c)]
    assert not running, running[:5]
    for payload in expected:
        assert "'" + payload in cells, (payload, cells[:40])
    for number in numbers:
        assert number in cells, (number, cells[:40])


def _rows_csv() -> bytes:
    """Rows to predict: the training frame's features, formula cells and negatives."""
    frame = training_frame(12).drop(columns="label")
    # "\r\n" line ends, so that the writer quotes the cells holding a carriage return
    return frame.to_csv(index=False, lineterminator="\r\n").encode()


def test_runs_export(dashboard: Any, hostile: Hostile) -> None:
    answer = dashboard.get(f"/experiments/{hostile.experiment_id}/runs.csv")
    assert answer.status_code == 200
    expected = (p.FORMULAS["dde"], p.FORMULAS["equals"], p.FORMULAS["at"])
    assert_formula_safe(answer.text, expected=expected, numbers=("-1", "-1.5"))


@pytest.mark.parametrize("extension", ["csv", "zip"])
def test_report_export(dashboard: Any, hostile: Hostile, extension: str) -> None:
    answer = dashboard.get(
        f"/experiments/{hostile.experiment_id}/report.{extension}", params={"metric": "accuracy"}
    )
    assert answer.status_code == 200, answer.text[:300]
    text = answer.text
    if extension == "zip":
        with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
            [name] = [n for n in archive.namelist() if n.endswith(".csv")]
            text = archive.read(name).decode()
    # the report's table holds names, ids, the parameters that vary and metrics
    assert_formula_safe(text, expected=(), numbers=())
    assert p.ATTRIBUTE_BREAKOUT in text  # a run's name, as text


def test_predictions_from_the_api(dashboard: Any) -> None:
    answer = dashboard.post(
        f"/api/models/{quote(MODEL, safe='')}/1/predict/batch",
        params={"format": "csv"},
        content=_rows_csv(),
        headers={"content-type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text[:300]
    _check_predictions(answer.text)


def test_predictions_downloaded_from_the_page(dashboard: Any) -> None:
    page = dashboard.post(
        f"/models/{quote(MODEL, safe='')}/predict/batch.json",
        files={"file": ("rows.csv", _rows_csv(), "text/csv")},
    )
    assert page.status_code == 200, page.text[:300]
    answer = dashboard.get(page.json()["batch"]["download"])
    assert answer.status_code == 200
    _check_predictions(answer.text)


def test_predictions_from_the_service(service: Any) -> None:
    answer = service.post(
        "/predict/batch",
        content=_rows_csv(),
        headers={"content-type": "text/csv", "accept": "text/csv"},
    )
    assert answer.status_code == 200, answer.text[:300]
    _check_predictions(answer.text)


def _check_predictions(text: str) -> None:
    header = csv_rows(text)[0]
    assert "'" + FEATURE not in header  # '"' is no formula start: the name stays
    assert NOTE in header
    negatives = tuple(cell for row in csv_rows(text)[1:] for cell in row if cell.startswith("-"))
    assert negatives, "the rows have negative numbers, which stay numbers"
    formulas = [f for f in p.FORMULAS.values() if f in training_frame(12)[NOTE].tolist()]
    assert_formula_safe(text, expected=(*formulas, *LABELS[:1]), numbers=negatives[:3])
