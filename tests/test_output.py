"""CSV written for spreadsheets: formulas neutralised, numbers and rows intact."""

from __future__ import annotations

import csv
import io

import numpy as np
import pandas as pd

from flowscope._output import frame_to_csv, to_csv


def test_frame_to_csv_quotes_formulas_and_keeps_numbers() -> None:
    frame = pd.DataFrame(
        {
            "text": ["=1+1", "+cmd", "-x", "@sum", "\tx", "\rx", "-1.5", "plain", None],
            "number": [-1.0, 2.0, -3.5, 0.0, 1e-3, -2.0, 3.0, 4.0, np.nan],
        }
    )
    lines = list(csv.reader(io.StringIO(frame_to_csv(frame))))
    assert [line[0] for line in lines[1:]] == [
        "'=1+1",
        "'+cmd",
        "'-x",
        "'@sum",
        "'\tx",
        "'\rx",
        "-1.5",
        "plain",
        "",
    ]
    assert [line[1] for line in lines[1:-1]] == [str(v) for v in frame["number"][:-1]]
    assert frame["text"][0] == "=1+1"  # the caller's frame is left as it was


def test_to_csv_quotes_a_cell_holding_a_carriage_return() -> None:
    rows = [{"name": "\rcmd", "value": -1}, {"name": "a\rb", "value": 2}]
    lines = list(csv.reader(io.StringIO(to_csv(rows), newline="")))
    assert lines == [["name", "value"], ["'\rcmd", "-1"], ["a\rb", "2"]]
