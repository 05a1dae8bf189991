"""Data sets kept by the workbench: accepted files of each kind, one folder per digest even
under concurrent uploads, loading by id, and the checks that do not refuse good files."""

from __future__ import annotations

import hashlib
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowscope.config import Settings
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.modeling.uploads import (
    dataset_view,
    datasets_dir,
    load_dataset,
    staging_dir,
    store_upload,
)
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(
        tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}", workbench_dir=tmp_path / "wb"
    )


def _store(settings: Settings, source: Path, name: str | None = None) -> dict[str, object]:
    """Upload a copy of ``source`` (the store takes its file over)."""
    copy = source.with_name(f"copy-{source.name}")
    shutil.copyfile(source, copy)
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    return store_upload(settings, copy, name or source.name, digest)


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    return pd.DataFrame(
        {
            "colour": rng.choice(["red", "green", None], 30),
            "size": np.where(rng.random(30) < 0.2, np.nan, rng.normal(size=30)),
            "label": ["a", "b", "c"] * 10,
        }
    )


def test_a_workbook_is_accepted_and_loaded_as_pandas_reads_it(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "sheet.xlsx"
    _frame().to_excel(path, index=False)
    meta = _store(settings, path)
    frame, loaded = load_dataset(settings, str(meta["dataset_id"]))
    pd.testing.assert_frame_equal(frame, pd.read_excel(path))
    assert loaded == meta
    folder = datasets_dir(settings) / str(meta["dataset_id"])
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "profile.json", "sheet.xlsx"]
    profile = json.loads((folder / "profile.json").read_text())
    assert profile["schema"]["size"]["missing"] == int(frame["size"].isna().sum())


def test_latin1_text_is_accepted(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "old.csv"
    rows = "".join(f"café {i % 2},{i}\n" for i in range(12))
    path.write_bytes(f"name,value\n{rows}".encode("latin-1"))
    frame, _ = load_dataset(settings, str(_store(settings, path)["dataset_id"]))
    assert frame["name"].iloc[0] == "café 0"


def test_concurrent_uploads_of_one_file_make_one_data_set(
    settings: Settings, tmp_path: Path
) -> None:
    source = tmp_path / "same.csv"
    _frame().to_csv(source, index=False)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    copies = []
    for i in range(6):
        copy = tmp_path / f"copy{i}.csv"
        shutil.copyfile(source, copy)
        copies.append(copy)
    with ThreadPoolExecutor(6) as pool:
        metas = list(pool.map(lambda c: store_upload(settings, c, "same.csv", digest), copies))
    assert {m["dataset_id"] for m in metas} == {digest[:16]}
    assert {m["uploaded_at"] for m in metas} == {metas[0]["uploaded_at"]}
    assert [p.name for p in datasets_dir(settings).iterdir() if p.name != ".staging"] == [
        digest[:16]
    ]
    assert list(staging_dir(settings).iterdir()) == []


def test_a_refused_file_leaves_nothing(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "dupes.csv"
    path.write_text("a,a\n1,2\n")
    with pytest.raises(FlowscopeError, match=r"dupes\.csv has duplicate column names"):
        _store(settings, path)
    assert [p for p in Path(settings.workbench_dir).rglob("*") if p.is_file()] == []


def test_a_file_name_cannot_leave_its_folder(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "plain.csv"
    _frame().to_csv(path, index=False)
    meta = _store(settings, path, name="../../evil.csv")
    assert meta["filename"] == "data.csv"
    assert (datasets_dir(settings) / str(meta["dataset_id"]) / "data.csv").is_file()


def test_built_in_and_unknown_ids(settings: Settings) -> None:
    frame, meta = load_dataset(settings, "builtin:wine")
    assert meta["target"] == "cultivar" and frame.shape == (178, 14)
    for bad in ("builtin:nope", "../wb", "0123456789ABCDEF", "", "0123456789abcdef"):
        with pytest.raises(NotFoundError):
            load_dataset(settings, bad)


def test_the_suggestion_skips_a_column_that_cannot_be_a_target(
    settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "ids.csv"
    pd.DataFrame({"name": [f"n{i}" for i in range(30)], "id": range(30)}).to_csv(path, index=False)
    view = dataset_view(settings, str(_store(settings, path)["dataset_id"]))
    # 30 distinct names are too many classes with one row each; the ids are a regression
    assert view["suggested_target"] == "id" and view["problem"] == "regression"
    empty = dataset_view(settings, str(view["dataset"]["dataset_id"]), "")
    assert empty["target"] is None and empty["model_types"] == []
