"""Dataset profiles: every number equals pandas', and the whole thing is strict JSON."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from flowscope.errors import FlowscopeError
from flowscope.modeling.data import load_builtin
from flowscope.tracking.profile import QUANTILES, profile_dataset


@pytest.fixture
def mixed() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 1000
    frame = pd.DataFrame(
        {
            "income": rng.lognormal(10, 1, n),
            "age": rng.integers(18, 90, n).astype(float),
            "children": rng.integers(0, 3, n),
            "city": pd.Series(rng.choice(["Paris", "Lyon", "Nice"], n), dtype="str"),
            "code": pd.Series([f"c{i % 80}" for i in range(n)], dtype="str"),
            "member": rng.random(n) > 0.3,
            "empty": np.nan,
            "label": rng.choice(["no", "yes"], n, p=[0.7, 0.3]),
        }
    )
    frame.loc[::7, "income"] = np.nan
    frame.loc[::11, "city"] = None
    frame.loc[::13, "age"] = np.inf
    return pd.concat([frame, frame.iloc[:25]], ignore_index=True)  # 25 duplicate rows


def test_profile_numbers_equal_pandas(mixed: pd.DataFrame) -> None:
    profile = profile_dataset(mixed, "label")
    assert profile["rows"] == len(mixed) and profile["columns"] == mixed.shape[1]
    assert profile["duplicate_rows"] == int(mixed.duplicated().sum()) == 25
    assert profile["missing_cells"] == int(mixed.isna().sum().sum())
    assert profile["memory_bytes"] == int(mixed.memory_usage(deep=True).sum())
    for column in mixed.columns:
        schema = profile["schema"][column]
        assert schema["dtype"] == str(mixed[column].dtype)
        assert schema["missing"] == int(mixed[column].isna().sum())
        assert schema["missing_share"] == pytest.approx(mixed[column].isna().mean())
    income = profile["features"]["income"]
    values = mixed["income"].dropna()
    assert income["kind"] == "numeric" and income["count"] == len(values)
    assert income["min"] == values.min() and income["max"] == values.max()
    assert income["mean"] == pytest.approx(values.mean())
    assert income["std"] == pytest.approx(values.std())
    expected = values.quantile(list(QUANTILES)).tolist()
    assert list(income["quantiles"]) == [
        "0",
        "0.01",
        "0.05",
        "0.25",
        "0.5",
        "0.75",
        "0.95",
        "0.99",
        "1",
    ]
    assert list(income["quantiles"].values()) == pytest.approx(expected)
    histogram = income["histogram"]
    assert len(histogram["counts"]) == 10 and len(histogram["edges"]) == 11
    assert sum(histogram["counts"]) == len(values)
    assert histogram["edges"] == sorted(histogram["edges"])
    # decile edges: every bin holds about a tenth of the rows, even for a skewed feature
    assert max(histogram["counts"]) - min(histogram["counts"]) <= 2
    assert "label" not in profile["features"]


def test_infinite_values_are_counted_apart(mixed: pd.DataFrame) -> None:
    age = profile_dataset(mixed)["features"]["age"]
    finite = mixed["age"][np.isfinite(mixed["age"])]
    assert age["infinite"] == int(np.isinf(mixed["age"]).sum())
    assert age["max"] == finite.max()
    assert sum(age["histogram"]["counts"]) == len(finite)


def test_few_valued_numbers_get_one_bin_per_value(mixed: pd.DataFrame) -> None:
    children = profile_dataset(mixed)["features"]["children"]
    counts = mixed["children"].value_counts().sort_index()
    assert children["histogram"]["counts"] == counts.tolist()
    assert children["histogram"]["edges"] == [0.0, 0.5, 1.5, 2.0]
    constant = profile_dataset(pd.DataFrame({"x": [4.0] * 5}))["features"]["x"]
    assert constant["histogram"] == {"edges": [4.0, 4.0], "counts": [5]}
    assert constant["std"] == 0.0


def test_categorical_features_keep_top_categories(mixed: pd.DataFrame) -> None:
    profile = profile_dataset(mixed)
    city = profile["features"]["city"]
    assert city["kind"] == "categorical"
    assert city["top"] == mixed["city"].value_counts().to_dict()
    assert city["distinct"] == 3 and city["other"] == 0
    code = profile["features"]["code"]
    assert code["distinct"] == 80 and len(code["top"]) == 50
    assert sum(code["top"].values()) + code["other"] == len(mixed)
    member = profile["features"]["member"]
    assert member["top"] == {str(k): v for k, v in mixed["member"].value_counts().items()}


def test_target_class_balance_and_regression_summary(mixed: pd.DataFrame) -> None:
    target = profile_dataset(mixed, "label")["target"]
    counts = mixed["label"].value_counts()
    assert target["problem"] == "binary" and target["classes"] == 2
    assert target["class_balance"]["counts"] == {"no": counts["no"], "yes": counts["yes"]}
    assert target["class_balance"]["shares"]["yes"] == pytest.approx(counts["yes"] / len(mixed))
    cancer, name = load_builtin("breast_cancer")
    balance = profile_dataset(cancer, name)["target"]["class_balance"]["counts"]
    assert balance == {"0": 212, "1": 357}
    diabetes, name = load_builtin("diabetes")
    target = profile_dataset(diabetes, name)["target"]
    assert target["problem"] == "regression"
    assert target["mean"] == pytest.approx(diabetes[name].mean())
    assert target["quantiles"]["0.5"] == diabetes[name].median()


def test_profile_is_strict_json_even_with_empty_columns(mixed: pd.DataFrame) -> None:
    profile = profile_dataset(mixed, "label")
    text = json.dumps(profile, allow_nan=False)
    assert json.loads(text) == profile
    empty = profile["features"]["empty"]
    assert empty["count"] == 0 and empty["mean"] is None and empty["histogram"] is None
    assert profile_dataset(mixed.iloc[:0])["rows"] == 0


def test_unknown_target_is_an_error(mixed: pd.DataFrame) -> None:
    with pytest.raises(FlowscopeError, match="cannot profile target 'nope'"):
        profile_dataset(mixed, "nope")


def test_profile_of_100k_rows_counts_every_row() -> None:
    """A larger frame, as a user's: every row is counted once in each histogram and in the
    class balance. (How fast it is profiled is measured in bench/, not asserted here.)"""
    rng = np.random.default_rng(1)
    n = 100_000
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(10)})
    frame["city"] = pd.Series(rng.choice([f"c{i}" for i in range(100)], n), dtype="str")
    frame["y"] = rng.integers(0, 2, n)
    profile = profile_dataset(frame, "y")
    assert profile["rows"] == n and profile["duplicate_rows"] == 0
    for i in range(10):
        feature = profile["features"][f"x{i}"]
        assert sum(feature["histogram"]["counts"]) == n
        assert feature["quantiles"]["0.5"] == pytest.approx(frame[f"x{i}"].median())
    assert profile["features"]["city"]["distinct"] == 100
    counts = profile["target"]["class_balance"]["counts"]
    assert counts == {str(k): int(v) for k, v in frame["y"].value_counts().items()}
