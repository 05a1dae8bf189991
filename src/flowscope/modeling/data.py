"""Loading tables and built-in datasets, and checking them before anything is trained.

Built-in datasets are the ones scikit-learn ships inside its package (no download):

============== ============ ============================================================
dataset        target       values
============== ============ ============================================================
iris           species      class names: "setosa", "versicolor", "virginica"
wine           cultivar     class names: "class_0", "class_1", "class_2"
breast_cancer  benign       0 (malignant) / 1 (benign), as scikit-learn codes them, so
                            binary metrics are about the positive class 1 and per-class
                            metrics read ``recall_0`` / ``recall_1``; the names
                            "malignant" and "benign" ride along in ``frame.attrs``
digits         digit        the digit, 0 to 9 (ints: the class names *are* the digits)
diabetes       progression  disease progression after one year (regression)
============== ============ ============================================================

Where scikit-learn codes classes as numbers but names them (breast cancer), the frame's
``attrs[CLASS_NAMES_ATTR]`` maps each code to its name; training keeps the names with the
model and its evaluation, for display beside the codes.

Feature names are made snake_case (``sepal length (cm)`` becomes ``sepal_length_cm``) so
every name is also a valid MLflow key; diabetes keeps its raw, unscaled features.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd

BUILTIN_DATASETS = ("iris", "wine", "breast_cancer", "diabetes", "digits")
_TARGETS = {
    "iris": "species",
    "wine": "cultivar",
    "breast_cancer": "benign",
    "diabetes": "progression",
    "digits": "digit",
}
# ``frame.attrs`` key of ``{class label: class name}`` (read by training).
CLASS_NAMES_ATTR = "flowscope.class_names"
# A numeric target with whole values and at most this many distinct ones is a class label.
MAX_DISTINCT_FOR_CLASSES = 20
# Fewer labelled rows than this cannot be split into a useful training and test set.
MIN_TRAINING_ROWS = 10
_DELIMITERS = (",", ";", "\t")
_SNIFF_BYTES = 64 * 1024


def load_builtin(name: str) -> tuple[pd.DataFrame, str]:
    """Load a dataset scikit-learn ships (see the table above) as one frame of features
    plus the target column; returns ``(frame, target_name)``.

    >>> frame, target = load_builtin("iris")
    >>> frame.shape, target
    ((150, 5), 'species')
    """
    import numpy as np
    import pandas as pd
    from sklearn import datasets

    key = name.strip().lower() if isinstance(name, str) else name
    if key not in BUILTIN_DATASETS:
        raise FlowscopeError(
            f"unknown built-in dataset {name!r}; built-in: {', '.join(BUILTIN_DATASETS)}"
        )
    loader = getattr(datasets, f"load_{key}")
    bunch = loader(scaled=False) if key == "diabetes" else loader()
    columns = [_snake(str(column)) for column in bunch.feature_names]
    frame = pd.DataFrame(np.asarray(bunch.data), columns=columns)
    target = _TARGETS[key]
    values = np.asarray(bunch.target)
    if key in ("iris", "wine"):
        frame[target] = pd.Series(np.asarray(bunch.target_names)[values], dtype="str")
    else:
        frame[target] = values
        names = getattr(bunch, "target_names", None)
        if names is not None and any(str(n) != str(code) for code, n in enumerate(names)):
            frame.attrs[CLASS_NAMES_ATTR] = {code: str(n) for code, n in enumerate(names)}
    return frame, target


def _snake(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower()


def load_dataset(spec: str | Path) -> tuple[pd.DataFrame, str | None]:
    """Load a built-in dataset by name or a CSV/XLSX file by path; returns the frame and
    the target name (None for a file: the user names the target)."""
    text = str(spec).strip()
    if text.lower() in BUILTIN_DATASETS and not Path(text).exists():
        return load_builtin(text)
    path = Path(text)
    if not path.exists() and not path.suffix:
        raise NotFoundError(
            f"{text!r} is neither a built-in dataset ({', '.join(BUILTIN_DATASETS)}) "
            "nor an existing file"
        )
    return read_table(path), None


def read_table(path: str | Path, name: str | None = None) -> pd.DataFrame:
    """Read a CSV (comma, semicolon or tab separated, detected from the first lines; UTF-8
    or Latin-1) or an XLSX workbook's first sheet into a DataFrame.

    A missing file, an unknown extension, a file that does not parse, an empty file and
    duplicate column names are errors naming the file (as ``name`` when given: an upload's
    own name, never the server's folder) and the problem.
    """
    path = Path(path)
    shown = name or str(path)
    if not path.exists():
        raise NotFoundError(f"file not found: {shown}")
    if not path.is_file():
        raise FlowscopeError(f"{shown} is a folder, not a data file")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".txt", ".xlsx"):
        hint = " (save it as .xlsx)" if suffix in (".xls", ".ods") else ""
        raise FlowscopeError(
            f"cannot read {name or path.name}: unknown file type {suffix or '(none)'!r}{hint}; "
            "use .csv, .tsv or .xlsx"
        )
    if path.stat().st_size == 0:
        raise FlowscopeError(f"{shown} is empty")
    frame = _read_excel(path, shown) if suffix == ".xlsx" else _read_csv(path, shown)
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise FlowscopeError(f"{shown} is empty: it has a header but no data rows")
    return frame


def _read_csv(path: Path, shown: str) -> pd.DataFrame:
    import pandas as pd

    raw = path.read_bytes()[:_SNIFF_BYTES]
    # UTF-8 (with or without the BOM Excel writes) first; Latin-1 decodes any byte, so the
    # exports of older spreadsheet tools still load.
    encoding = "utf-8-sig"
    try:
        sample = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        if exc.start < len(raw) - 4:  # not just a character cut at the end of the sample
            encoding = "latin-1"
        sample = raw.decode(encoding, errors="ignore")
    if not sample.strip():
        raise FlowscopeError(f"{shown} is empty")
    delimiter = "\t" if path.suffix.lower() == ".tsv" else _sniff_delimiter(sample)
    header = next(csv.reader(io.StringIO(sample), delimiter=delimiter), [])
    _check_header(shown, [name.strip() for name in header])
    try:
        try:
            return pd.read_csv(path, sep=delimiter, encoding=encoding)
        except UnicodeDecodeError:
            return pd.read_csv(path, sep=delimiter, encoding="latin-1")
    except pd.errors.EmptyDataError:
        raise FlowscopeError(f"{shown} is empty") from None
    except (pd.errors.ParserError, ValueError) as exc:
        said = _one_line(exc).replace(str(path), shown)
        raise FlowscopeError(f"cannot parse {shown} as CSV: {said}") from None


def _sniff_delimiter(sample: str) -> str:
    """The delimiter giving the same number (>1) of fields on the most lines; a file of one
    column is read with commas."""
    lines = sample.splitlines()
    if len(sample) >= _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut off by the sample
    lines = [line for line in lines[:50] if line.strip()]
    best, best_score = ",", (0, 0)
    for delimiter in _DELIMITERS:
        widths = [len(row) for row in csv.reader(lines, delimiter=delimiter)]
        if not widths or widths[0] < 2:
            continue
        score = (sum(width == widths[0] for width in widths), widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _read_excel(path: Path, shown: str) -> pd.DataFrame:
    import pandas as pd

    try:
        header = pd.read_excel(path, engine="openpyxl", header=None, nrows=1)
        if header.empty:
            raise FlowscopeError(f"{shown} is empty: its first sheet has no cells")
        _check_header(shown, [str(name).strip() for name in header.iloc[0] if pd.notna(name)])
        return pd.read_excel(path, engine="openpyxl")
    except FlowscopeError:
        raise
    except Exception as exc:  # openpyxl raises zip, XML and value errors for bad files
        said = _one_line(exc).replace(str(path), shown)
        raise FlowscopeError(f"cannot read {shown} as an Excel workbook: {said}") from None


def _check_header(shown: str, names: list[str]) -> None:
    """The first row must name the columns: not data (every cell a number), no name twice."""
    named = [name for name in names if name]
    if named and all(_is_number(name) for name in named):
        first = ", ".join(named[:5]) + (", ..." if len(named) > 5 else "")
        raise FlowscopeError(
            f"{shown} has no header row: its first row ({first}) holds only numbers, so it "
            "looks like data; add a first row with the column names"
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise FlowscopeError(
            f"{shown} has duplicate column names: {', '.join(map(repr, duplicates))}; "
            "rename them so that each column has its own name"
        )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if len(text) < 300 else f"{text[:300]}..."


def infer_problem(y: Any) -> str:
    """``"binary"``, ``"multiclass"`` or ``"regression"`` for a target, ignoring missing
    values.

    Text, booleans and categories are classes. Numbers are classes when they are whole
    (ints, or floats such as 1.0 that a CSV with gaps produces) and take at most
    ``MAX_DISTINCT_FOR_CLASSES`` (20) distinct values; any other numbers are a regression
    target. Two distinct classes make a binary problem. Pass ``problem=`` to
    :func:`validate_training_data` where this guess is wrong (an integer score to regress).
    """
    import numpy as np
    import pandas as pd

    values = pd.Series(y).dropna()
    if values.empty:
        raise FlowscopeError("the target has no values (all missing)")
    distinct = values.nunique()
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
            raise FlowscopeError(f"a target of type {dtype} cannot be predicted; convert it")
        return "binary" if distinct <= 2 else "multiclass"
    whole = pd.api.types.is_integer_dtype(dtype) or bool(
        np.all(np.mod(values.to_numpy(dtype=float), 1) == 0)
    )
    if whole and distinct <= MAX_DISTINCT_FOR_CLASSES:
        return "binary" if distinct <= 2 else "multiclass"
    return "regression"


def validate_training_data(
    frame: pd.DataFrame,
    target: str,
    problem: str | None = None,
    max_classes: int = 50,
) -> str:
    """Check that ``frame`` can train a model of ``target`` and return the problem
    ("binary", "multiclass" or "regression"; inferred by :func:`infer_problem` unless
    given; "classification" is resolved to one of the first two).

    Rows whose target is missing are not an error: they cannot teach anything, so training
    leaves them out, and a warning says how many. Everything else that would make training
    fail or meaningless is a :class:`FlowscopeError` naming the problem.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise FlowscopeError(f"training data must be a DataFrame, not {type(frame).__name__}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise FlowscopeError("the training data is empty (no rows or no columns)")
    columns = [str(column) for column in frame.columns]
    if target not in frame.columns:
        raise FlowscopeError(
            f"target column {target!r} not found; {_columns_hint(target, columns)}"
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise FlowscopeError(f"duplicate column names: {', '.join(map(repr, duplicated))}")
    if frame.shape[1] < 2:
        raise FlowscopeError(f"no feature columns: the data has only the target {target!r}")
    y = frame[target]
    labelled = y.dropna()
    if labelled.empty:
        raise FlowscopeError(f"target {target!r} has no values: it is missing in every row")
    missing = len(y) - len(labelled)
    if missing:
        warnings.warn(
            f"{missing} of {len(y)} rows have no value for target {target!r}; "
            "they are left out of training",
            UserWarning,
            stacklevel=2,
        )
    distinct = labelled.nunique()
    if distinct < 2:
        raise FlowscopeError(
            f"target {target!r} is constant ({labelled.iloc[0]!r} in every labelled row): "
            "there is nothing to learn"
        )
    problem = _resolve_problem(labelled, target, problem)
    if len(labelled) < MIN_TRAINING_ROWS:
        raise FlowscopeError(
            f"only {len(labelled)} rows have a target; at least {MIN_TRAINING_ROWS} are "
            "needed to split them into training and test sets"
        )
    if problem != "regression":
        _check_classes(labelled, target, max_classes)
    return problem


def _resolve_problem(labelled: pd.Series, target: str, problem: str | None) -> str:
    import pandas as pd

    inferred = infer_problem(labelled)
    if problem is None:
        return inferred
    if problem == "classification":
        return "binary" if labelled.nunique() == 2 else "multiclass"
    if problem in ("binary", "multiclass"):
        actual = "binary" if labelled.nunique() == 2 else "multiclass"
        if actual != problem:
            raise FlowscopeError(
                f"target {target!r} has {labelled.nunique()} classes: it is {actual}, not {problem}"
            )
        return problem
    if problem == "regression":
        numeric = pd.api.types.is_numeric_dtype(labelled.dtype)
        if not numeric or pd.api.types.is_bool_dtype(labelled.dtype):
            raise FlowscopeError(
                f"target {target!r} holds {labelled.dtype} values, not numbers: "
                "regression needs a numeric target"
            )
        return problem
    raise FlowscopeError(
        f"unknown problem {problem!r}; use binary, multiclass, classification or regression"
    )


def _check_classes(labelled: pd.Series, target: str, max_classes: int) -> None:
    counts = labelled.value_counts()
    if len(counts) > max_classes:
        raise FlowscopeError(
            f"target {target!r} has {len(counts)} distinct values, too many classes for "
            f"classification (at most {max_classes}); if it is a quantity, train a "
            "regression (problem='regression')"
        )
    lonely = [repr(label) for label, count in counts.items() if count < 2]
    if lonely:
        more = f" and {len(lonely) - 10} more" if len(lonely) > 10 else ""
        shown = ", ".join(lonely[:10]) + more
        raise FlowscopeError(
            f"target {target!r}: classes {shown} have a single row; each class needs at "
            "least 2 rows to appear in both the training and the test set"
        )


def _columns_hint(target: str, columns: list[str]) -> str:
    close = [c for c in columns if c.strip().lower() == str(target).strip().lower()]
    if close:
        return f"did you mean {close[0]!r}?"
    shown = ", ".join(repr(c) for c in columns[:20])
    more = f" and {len(columns) - 20} more" if len(columns) > 20 else ""
    return f"the columns are {shown}{more}"
