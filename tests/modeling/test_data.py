"""Loading built-in datasets and files, and the checks that run before any training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.modeling.data import (
    BUILTIN_DATASETS,
    infer_problem,
    load_builtin,
    load_dataset,
    read_table,
    validate_training_data,
)


@pytest.mark.parametrize(
    ("name", "shape", "target", "problem"),
    [
        ("iris", (150, 5), "species", "multiclass"),
        ("wine", (178, 14), "cultivar", "multiclass"),
        ("breast_cancer", (569, 31), "benign", "binary"),
        ("diabetes", (442, 11), "progression", "regression"),
        ("digits", (1797, 65), "digit", "multiclass"),
    ],
)
def test_builtin_datasets_load_offline_with_their_target(
    name: str, shape: tuple[int, int], target: str, problem: str
) -> None:
    frame, target_name = load_builtin(name)
    assert frame.shape == shape
    assert target_name == target and frame.columns[-1] == target
    assert validate_training_data(frame, target) == problem
    assert all(column.isidentifier() and column.lower() == column for column in frame.columns)
    assert not frame.isna().any().any()


def test_builtin_targets_hold_names_or_codes_as_documented() -> None:
    iris, target = load_builtin("iris")
    assert sorted(iris[target].unique()) == ["setosa", "versicolor", "virginica"]
    assert "sepal_length_cm" in iris.columns
    cancer, target = load_builtin("breast_cancer")
    assert sorted(cancer[target].unique()) == [0, 1]
    assert pd.api.types.is_integer_dtype(cancer[target])
    assert cancer[target].sum() == 357  # benign cases are 1, as scikit-learn codes them
    digits, target = load_builtin("digits")
    assert sorted(digits[target].unique()) == list(range(10))
    diabetes, target = load_builtin("diabetes")
    assert diabetes["age"].min() >= 18  # raw, unscaled features


def test_unknown_builtin_lists_the_known_ones() -> None:
    with pytest.raises(FlowscopeError, match=r"unknown built-in dataset 'titanic'.*iris"):
        load_builtin("titanic")


def test_load_dataset_takes_a_builtin_name_or_a_path(tmp_path: Path) -> None:
    frame, target = load_dataset("IRIS")
    assert target == "species" and len(frame) == 150
    path = tmp_path / "data.csv"
    path.write_text("a,b\n1,x\n2,y\n")
    frame, target = load_dataset(str(path))
    assert target is None and frame.shape == (2, 2)
    with pytest.raises(NotFoundError, match=r"neither a built-in dataset.*nor an existing file"):
        load_dataset("titanic")
    with pytest.raises(NotFoundError, match="file not found"):
        load_dataset(tmp_path / "missing.csv")
    assert set(BUILTIN_DATASETS) == {"iris", "wine", "breast_cancer", "diabetes", "digits"}


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_delimiters_are_detected(tmp_path: Path, delimiter: str) -> None:
    rows = [["name", "price", "note"], ["a", "1.5", '"x, y; z"'], ["b", "2", "plain"]]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(delimiter.join(row) for row in rows) + "\n")
    frame = read_table(path)
    assert list(frame.columns) == ["name", "price", "note"]
    assert frame["price"].tolist() == [1.5, 2.0]
    assert frame["note"].tolist() == ["x, y; z", "plain"]


def test_csv_encodings_utf8_bom_and_latin1(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("city,n\nZürich,1\n".encode("utf-8-sig"))
    assert list(read_table(path).columns) == ["city", "n"]
    path = tmp_path / "latin.csv"
    path.write_bytes("city;n\nSão Paulo;1\n".encode("latin-1"))
    assert read_table(path)["city"].tolist() == ["São Paulo"]


def test_xlsx_is_read(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    expected = pd.DataFrame({"x": [1.0, 2.5, np.nan], "label": ["a", "b", "a"]})
    expected.to_excel(path, index=False)
    frame = read_table(path)
    assert frame["x"].tolist()[:2] == [1.0, 2.5] and np.isnan(frame["x"].iloc[2])
    assert frame["label"].tolist() == ["a", "b", "a"]


@pytest.mark.parametrize(
    ("name", "content", "error", "message"),
    [
        ("ragged.csv", "a,b\n1,2\n3,4,5,6\n", FlowscopeError, r"cannot parse .*ragged\.csv as CSV"),
        ("quote.csv", 'a,b\n1,"open\n', FlowscopeError, r"cannot parse .*quote\.csv as CSV"),
        ("fake.xlsx", "a,b\n1,2\n", FlowscopeError, r"cannot read .*fake\.xlsx as an Excel"),
        ("empty.csv", "", FlowscopeError, r"empty\.csv is empty"),
        ("blank.csv", "\n  \n", FlowscopeError, r"blank\.csv is empty"),
        ("header.csv", "a,b\n", FlowscopeError, r"header\.csv is empty: .*no data rows"),
        ("dupes.csv", "a,b,a\n1,2,3\n", FlowscopeError, r"dupes\.csv has duplicate column.*'a'"),
        ("data.json", "{}", FlowscopeError, r"data\.json: unknown file type '\.json'"),
        ("old.xls", "x", FlowscopeError, r"save it as \.xlsx"),
    ],
)
def test_bad_files_are_clear_errors(
    tmp_path: Path, name: str, content: str, error: type[Exception], message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(error, match=message) as caught:
        read_table(path)
    assert "\n" not in str(caught.value)


def test_parser_complaint_is_in_the_message(tmp_path: Path) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3,4,5,6\n")
    with pytest.raises(FlowscopeError, match=r"Expected 2 fields in line 3, saw 4"):
        read_table(path)


def test_missing_file_and_duplicate_xlsx_columns(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"file not found: .*nowhere\.csv"):
        read_table(tmp_path / "nowhere.csv")
    with pytest.raises(FlowscopeError, match="is a folder"):
        read_table(tmp_path)
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["x", "y", "x"])
    sheet.append([1, 2, 3])
    book.save(tmp_path / "dupes.xlsx")
    with pytest.raises(FlowscopeError, match=r"dupes\.xlsx has duplicate column names: 'x'"):
        read_table(tmp_path / "dupes.xlsx")
    Workbook().save(tmp_path / "blank.xlsx")
    with pytest.raises(FlowscopeError, match=r"blank\.xlsx is empty"):
        read_table(tmp_path / "blank.xlsx")


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        (["yes", "no", "yes", None], "binary"),
        ([True, False, True], "binary"),
        (["a", "b", "c"], "multiclass"),
        ([0, 1, 1, 0], "binary"),
        ([1, 2, 3, 2, 1], "multiclass"),
        ([1.0, 2.0, np.nan, 3.0], "multiclass"),  # whole numbers with a gap, as CSVs give
        (list(range(21)), "regression"),  # more distinct whole numbers than classes allow
        ([0.5, 1.5, 0.5, 2.25], "regression"),
        (pd.Categorical(["x", "y", "x"]), "binary"),
    ],
)
def test_infer_problem(values: list[object], problem: str) -> None:
    assert infer_problem(pd.Series(values)) == problem


def test_infer_problem_needs_values() -> None:
    with pytest.raises(FlowscopeError, match="no values"):
        infer_problem(pd.Series([np.nan, None]))


def _frame(n: int = 40, classes: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"x": rng.normal(size=n), "z": rng.normal(size=n), "label": np.arange(n) % classes}
    )


@pytest.mark.parametrize(
    ("frame", "target", "message"),
    [
        (pd.DataFrame(), "y", r"training data is empty"),
        (pd.DataFrame({"y": []}), "y", r"training data is empty"),
        (_frame(), "target", r"target column 'target' not found; the columns are 'x', 'z'"),
        (_frame(), "LABEL", r"not found; did you mean 'label'\?"),
        (_frame()[["label"]], "label", r"no feature columns"),
        (_frame().assign(label=np.nan), "label", r"target 'label' has no values"),
        (_frame().assign(label="same"), "label", r"target 'label' is constant \('same'"),
        (
            _frame(200).assign(label=[f"c{i % 60}" for i in range(200)]),
            "label",
            r"has 60 distinct values, too many classes for classification \(at most 50\)",
        ),
        (_frame(8), "label", r"only 8 rows have a target; at least 10"),
        (_frame().assign(label=["a"] + ["b"] * 39), "label", r"classes 'a' have a single row"),
    ],
)
def test_unusable_training_data_is_a_clear_error(
    frame: pd.DataFrame, target: str, message: str
) -> None:
    with pytest.raises(FlowscopeError, match=message):
        validate_training_data(frame, target)


def test_missing_target_lists_columns_truncated() -> None:
    wide = pd.DataFrame({f"feature_{i}": [1, 2] for i in range(30)})
    with pytest.raises(FlowscopeError, match=r"'feature_19' and 10 more$"):
        validate_training_data(wide, "y")


def test_rows_without_target_are_left_out_with_a_warning() -> None:
    frame = _frame(30)
    frame["label"] = frame["label"].astype(float)
    frame.loc[[0, 5, 7], "label"] = np.nan
    with pytest.warns(UserWarning, match="3 of 30 rows have no value for target 'label'"):
        assert validate_training_data(frame, "label") == "binary"
    too_few = _frame(12)
    too_few["label"] = too_few["label"].astype(float)
    too_few.loc[:4, "label"] = np.nan
    with pytest.warns(UserWarning), pytest.raises(FlowscopeError, match="only 7 rows"):
        validate_training_data(too_few, "label")


def test_the_problem_can_be_given() -> None:
    frame = _frame(40, classes=4)
    assert validate_training_data(frame, "label") == "multiclass"
    assert validate_training_data(frame, "label", problem="regression") == "regression"
    assert validate_training_data(frame, "label", problem="classification") == "multiclass"
    with pytest.raises(FlowscopeError, match="it is multiclass, not binary"):
        validate_training_data(frame, "label", problem="binary")
    text = frame.assign(label=frame["label"].map(str))
    with pytest.raises(FlowscopeError, match="regression needs a numeric target"):
        validate_training_data(text, "label", problem="regression")
    with pytest.raises(FlowscopeError, match="unknown problem 'ranking'"):
        validate_training_data(frame, "label", problem="ranking")
    many = _frame(200, classes=60)
    assert validate_training_data(many, "label") == "regression"
    with pytest.raises(FlowscopeError, match="60 distinct values"):
        validate_training_data(many, "label", problem="classification")
