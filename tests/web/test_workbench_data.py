"""The workbench's data sets through the JSON API and the page, in process: an upload's
profile equals pandas' own numbers, the same file is one data set, and every bad input is
refused with its status and a message naming the problem, leaving nothing on disk."""

from __future__ import annotations

import hashlib
import io
import re
import tracemalloc
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from flowscope.config import Settings
from tests.conftest import make_settings
from tests.leaks import assert_no_leak
from tests.web.datasets import customers

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# A zip bomb's check reads the zip directory and the head of each XML part, never the
# expanded part: this bounds what memory it may take (the upload itself is about 1 MB).
BOMB_MEMORY_BYTES = 50 * 1024 * 1024
SMALL_CAP = 100_000


def _client(root: Path, **overrides: object) -> Iterator[TestClient]:
    from flowscope.web import create_app

    settings = make_settings(
        root, f"sqlite:///{root / 'mlflow.db'}", workbench_dir=root / "workbench", **overrides
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from _client(tmp_path_factory.mktemp("workbench"))


@pytest.fixture(scope="module")
def small_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """A dashboard that accepts uploads of at most ``SMALL_CAP`` bytes."""
    yield from _client(tmp_path_factory.mktemp("workbench-small"), upload_max_bytes=SMALL_CAP)


def _settings(client: TestClient) -> Settings:
    settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    return settings


def _stored(client: TestClient) -> set[str]:
    """Every file under the workbench folder."""
    root = Path(_settings(client).workbench_dir)
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _upload(client: TestClient, name: str, content: bytes, url: str = "/api/datasets") -> Any:
    return client.post(url, files={"file": (name, content, "application/octet-stream")})


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def test_upload_profile_equals_pandas_and_preview_keeps_gaps(client: TestClient) -> None:
    content = _csv(customers())
    answer = _upload(client, "Customer churn.csv", content)
    assert answer.status_code == 201, answer.text
    data = answer.json()
    expected = pd.read_csv(io.BytesIO(content))
    assert data["ok"] is True
    assert data["dataset_id"] == hashlib.sha256(content).hexdigest()[:16]
    profile = data["profile"]
    assert (profile["rows"], profile["columns"]) == expected.shape
    assert profile["duplicate_rows"] == int(expected.duplicated().sum()) == 2
    assert profile["missing_cells"] == int(expected.isna().sum().sum())
    for column in expected.columns:
        assert profile["schema"][column]["missing"] == int(expected[column].isna().sum())
        assert profile["schema"][column]["dtype"] == str(expected[column].dtype)
    # the last column is suggested as the target; its class balance is pandas' count
    assert data["target"] == data["suggested_target"] == "churned"
    assert data["problem"] == "binary"
    counts = expected["churned"].value_counts()
    assert profile["target"]["class_balance"]["counts"] == {k: int(v) for k, v in counts.items()}
    assert profile["features"]["city"]["distinct"] == expected["city"].nunique()
    head = expected.head(20).astype(object).where(expected.head(20).notna(), None)
    assert data["preview"]["columns"] == list(expected.columns)
    assert data["preview"]["rows"] == head.to_numpy().tolist()
    model_types = [m["name"] for m in data["model_types"]]
    assert {"random_forest", "logistic_regression"} <= set(model_types)
    assert "ridge" not in model_types  # a regressor only
    assert data["default_task"] == "customer-churn"
    meta_files = {f"datasets/{data['dataset_id']}/{n}" for n in ("meta.json", "profile.json")}
    assert meta_files | {f"datasets/{data['dataset_id']}/Customer churn.csv"} <= _stored(client)


def test_the_same_file_twice_is_one_data_set(client: TestClient) -> None:
    content = _csv(customers(30))
    first = _upload(client, "first.csv", content).json()
    before = _stored(client)
    second = _upload(client, "again.csv", content).json()
    assert second["dataset_id"] == first["dataset_id"]
    assert second["dataset"]["filename"] == "first.csv"
    assert _stored(client) == before
    listed = client.get("/api/datasets").json()["datasets"]
    ids = [d["dataset_id"] for d in listed]
    assert ids.count(first["dataset_id"]) == 1
    # uploads first, newest first, then every built-in data set
    uploaded = [d for d in listed if not d["builtin"]]
    assert [d["uploaded_at"] for d in uploaded] == sorted(
        (d["uploaded_at"] for d in uploaded), reverse=True
    )
    assert ids[len(uploaded) :] == [
        "builtin:iris",
        "builtin:wine",
        "builtin:breast_cancer",
        "builtin:diabetes",
        "builtin:digits",
    ]


def test_a_built_in_data_set_comes_with_its_target(client: TestClient) -> None:
    data = client.get("/api/datasets/builtin:diabetes").json()
    assert data["target"] == "progression" and data["problem"] == "regression"
    assert data["profile"]["rows"] == 442
    names = [m["name"] for m in data["model_types"]]
    assert "ridge" in names and "logistic_regression" not in names


PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01" + bytes(64)

BAD_FILES = [
    ("picture.csv", PNG, r"picture\.csv is not text: it is a PNG image"),
    ("junk.csv", np.random.default_rng(1).bytes(4096), r"junk\.csv is not text"),
    ("wide.csv", "a,b\n1,2\n".encode("utf-16"), r"wide\.csv is UTF-16 text; save it as UTF-8"),
    ("empty.csv", b"", r"empty\.csv is empty"),
    ("header.csv", b"a,b\n", r"header\.csv is empty: it has a header but no data rows"),
    ("numbers.csv", b"5.1,3.5,1.4\n4.9,3.0,1.4\n", r"numbers\.csv has no header row"),
    ("dupes.csv", b"a,b,a\n1,2,3\n4,5,6\n", r"dupes\.csv has duplicate column names: 'a'"),
    ("data.parquet", b"PAR1....", r"data\.parquet: files of type '\.parquet' are not accepted"),
    ("fake.xlsx", b"a,b\n1,2\n", r"fake\.xlsx is not an Excel workbook"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_a_bad_file_is_refused_naming_the_problem(
    client: TestClient, name: str, content: bytes, message: str
) -> None:
    before = _stored(client)
    answer = _upload(client, name, content)
    assert answer.status_code == 400
    assert answer.json()["ok"] is False
    assert re.search(message, answer.json()["error"])
    assert _stored(client) == before
    # the page shows the same error inline, with the same status
    page = _upload(client, name, content, url="/workbench/upload")
    assert page.status_code == 400
    assert 'id="upload-error"' in page.text and 'id="upload-form"' in page.text
    assert _stored(client) == before


def test_duplicate_names_in_a_workbook_are_refused(client: TestClient, tmp_path: Path) -> None:
    path = tmp_path / "dupes.xlsx"
    pd.DataFrame([["x", 1, 2], ["y", 3, 4]], columns=["id", "v", "v "]).to_excel(path, index=False)
    answer = _upload(client, "dupes.xlsx", path.read_bytes())
    assert answer.status_code == 400
    assert "dupes.xlsx has duplicate column names: 'v'" in answer.json()["error"]


def test_an_upload_over_the_cap_is_refused_before_parsing(small_client: TestClient) -> None:
    before = _stored(small_client)
    big = b"a,b\n" + b"1,2\n" * (SMALL_CAP // 4 + 10)
    answer = _upload(small_client, "big.csv", big)
    assert answer.status_code == 413
    assert f"larger than the limit of {SMALL_CAP:,} bytes" in answer.json()["error"]
    page = _upload(small_client, "big.csv", big, url="/workbench/upload")
    assert page.status_code == 413 and 'id="upload-error"' in page.text
    assert _stored(small_client) == before


def test_a_streamed_body_past_the_cap_is_refused(small_client: TestClient) -> None:
    """No declared length: the bytes are counted as they arrive."""

    def body() -> Iterator[bytes]:
        yield b'--cut\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'
        for _ in range(10 * SMALL_CAP // 1024):
            yield b"1,2\n" * 256
        yield b"\r\n--cut--\r\n"

    before = _stored(small_client)
    answer = small_client.post(
        "/api/datasets",
        content=body(),
        headers={"content-type": "multipart/form-data; boundary=cut"},
    )
    assert answer.status_code == 413
    assert "upload_max_bytes" in answer.json()["error"]
    assert _stored(small_client) == before


def test_a_huge_declared_length_is_refused_without_reading_the_body(
    small_client: TestClient,
) -> None:
    sent: list[int] = []

    def body() -> Iterator[bytes]:
        for chunk in range(100):
            sent.append(chunk)
            yield b"x" * 1024

    answer = small_client.post(
        "/api/datasets",
        content=body(),
        headers={"content-length": str(10**12), "content-type": "multipart/form-data; boundary=x"},
    )
    assert answer.status_code == 413
    assert sent == []


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _within_memory(client: TestClient, name: str, content: bytes) -> tuple[Any, int]:
    """The upload's answer and the peak of memory Python allocated while it was checked."""
    tracemalloc.start()
    try:
        answer = _upload(client, name, content)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return answer, peak


@pytest.fixture(scope="module")
def gigabyte_bomb(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A workbook whose one sheet is 1 GiB of zeros, compressed to about 1 MB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.xlsx"
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet,
    ):
        chunk = bytes(1 << 20)
        for _ in range(1024):
            sheet.write(chunk)
    return path.read_bytes()


@pytest.mark.slow
def test_a_zip_bomb_is_refused_in_bounded_memory(client: TestClient, gigabyte_bomb: bytes) -> None:
    before = _stored(client)
    answer, peak = _within_memory(client, "bomb.xlsx", gigabyte_bomb)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "bomb.xlsx is refused" in error and "'xl/worksheets/sheet1.xml' expands" in error
    assert peak < BOMB_MEMORY_BYTES
    assert _stored(client) == before


def test_a_workbook_expanding_past_the_total_limit_is_refused(small_client: TestClient) -> None:
    # each part under the size from which ratios are checked; together past 20x the cap
    parts = {f"xl/worksheets/sheet{i}.xml": bytes(900_000) for i in range(1, 4)}
    answer = _upload(small_client, "wide.xlsx", _zip(parts))
    assert answer.status_code == 400
    assert "wide.xlsx is refused: it would expand to 2,700,000 bytes" in answer.json()["error"]


def test_a_workbook_of_too_many_parts_is_refused(client: TestClient) -> None:
    parts = {f"xl/media/p{i}.xml": b"<a/>" for i in range(1500)}
    answer = _upload(client, "parts.xlsx", _zip(parts))
    assert answer.status_code == 400
    assert "parts.xlsx is refused: it holds 1,500 parts" in answer.json()["error"]


def test_a_huge_zip_directory_is_refused_in_bounded_memory(client: TestClient) -> None:
    """Its directory is refused from the end record, before zipfile reads it whole."""
    parts = {f"xl/worksheets/a-rather-long-part-name-{i:06d}.xml": b"" for i in range(30_000)}
    before = _stored(client)
    answer, peak = _within_memory(client, "listing.xlsx", _zip(parts))
    assert answer.status_code == 400
    assert "listing.xlsx is refused: its zip directory" in answer.json()["error"]
    assert peak < BOMB_MEMORY_BYTES
    assert _stored(client) == before


BILLION_LAUGHS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE sst [\n<!ENTITY l0 "lol">\n'
    + b"".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">\n'.encode() for i in range(1, 10))
    + b']>\n<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    b"<si><t>&l9;</t></si></sst>"
)


def entity_workbook(path: Path) -> Path:
    """A real workbook whose header cell A1 is a shared string, and whose shared strings
    hold a billion laughs."""
    plain = path.with_name("plain.xlsx")
    pd.DataFrame({"name": ["a", "b"], "value": [1, 2]}).to_excel(plain, index=False)
    # openpyxl writes strings inline: point A1 at the shared strings instead
    edits = {
        "xl/worksheets/sheet1.xml": (
            b'<c r="A1" t="inlineStr"><is><t>name</t></is></c>',
            b'<c r="A1" t="s"><v>0</v></c>',
        ),
        "[Content_Types].xml": (
            b"</Types>",
            b'<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
            b'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>',
        ),
        "xl/_rels/workbook.xml.rels": (
            b"</Relationships>",
            b'<Relationship Id="rIdStrings" Type="http://schemas.openxmlformats.org/'
            b'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml"/>'
            b"</Relationships>",
        ),
    }
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as target:
        for member in source.infolist():
            data = source.read(member)
            if member.filename in edits:
                old, new = edits[member.filename]
                assert old in data, member.filename
                data = data.replace(old, new)
            target.writestr(member, data)
        target.writestr("xl/sharedStrings.xml", BILLION_LAUGHS)
    return path


def test_an_xml_entity_expansion_is_refused(client: TestClient, tmp_path: Path) -> None:
    before = _stored(client)
    path = entity_workbook(tmp_path / "laughs.xlsx")
    answer, peak = _within_memory(client, "laughs.xlsx", path.read_bytes())
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert "laughs.xlsx is refused: its part 'xl/sharedStrings.xml' declares a document type" in (
        error
    )
    assert peak < BOMB_MEMORY_BYTES
    assert _stored(client) == before


def test_openpyxl_itself_refuses_the_entity_expansion(tmp_path: Path) -> None:
    """Past the check of the prolog, defusedxml is in force in openpyxl's parser."""
    import openpyxl
    from defusedxml import EntitiesForbidden

    from flowscope.errors import FlowscopeError
    from flowscope.modeling.data import read_table

    path = entity_workbook(tmp_path / "laughs.xlsx")
    with pytest.raises(ValueError, match="could not read strings") as caught:
        openpyxl.load_workbook(path, read_only=True)
    causes, cause = [], caught.value.__cause__ or caught.value.__context__
    while cause is not None:
        causes.append(cause)
        cause = cause.__cause__ or cause.__context__
    assert any(isinstance(c, EntitiesForbidden) for c in causes), causes
    with pytest.raises(FlowscopeError, match="could not read strings"):
        read_table(path)


@pytest.fixture(scope="module")
def targets(client: TestClient) -> str:
    """A data set whose columns make every kind of bad target."""
    rows = 120
    frame = pd.DataFrame(
        {
            "feature": np.arange(rows, dtype=float),
            "const": ["same"] * rows,
            "many": [f"c{i % 60}" for i in range(rows)],
            "empty": [np.nan] * rows,
            "label": ["a", "b", "c"] * (rows // 3),
        }
    )
    answer = _upload(client, "targets.csv", _csv(frame))
    assert answer.status_code == 201, answer.text
    assert answer.json()["target"] == "label"
    dataset_id: str = answer.json()["dataset_id"]
    return dataset_id


BAD_TARGETS = [
    ("nope", r"target column 'nope' not found; the columns are 'feature', 'const'"),
    ("const", r"target 'const' is constant \('same' in every labelled row\)"),
    ("many", r"target 'many' has 60 distinct values, too many classes"),
    ("empty", r"target 'empty' has no values: it is missing in every row"),
]


@pytest.mark.parametrize(("target", "message"), BAD_TARGETS, ids=[t for t, _ in BAD_TARGETS])
def test_a_bad_target_is_refused_naming_the_column(
    client: TestClient, targets: str, target: str, message: str
) -> None:
    answer = client.get(f"/api/datasets/{targets}", params={"target": target})
    assert answer.status_code == 400
    assert re.search(message, answer.json()["error"])
    # the page keeps the data set, shows why inline and offers no train form
    page = client.get("/workbench", params={"dataset": targets, "target": target})
    assert page.status_code == 400
    assert 'id="target-error"' in page.text and 'id="preview"' in page.text
    assert 'id="train-form"' not in page.text


def test_unknown_data_sets_are_not_found(client: TestClient) -> None:
    for dataset_id in ("0123456789abcdef", "builtin:mnist", "..", "..%2F..%2Fetc"):
        answer = client.get(f"/api/datasets/{dataset_id}")
        assert answer.status_code == 404, dataset_id
    error = client.get("/api/datasets/0123456789abcdef").json()["error"]
    assert "no data set '0123456789abcdef'" in error
    assert client.get("/workbench", params={"dataset": "../meta"}).status_code == 404


def test_the_page_shows_a_data_set_and_its_train_form(client: TestClient, targets: str) -> None:
    page = client.get("/workbench", params={"dataset": targets, "target": "label"})
    assert page.status_code == 200
    assert page.headers["link"].startswith("</workbench.json?")
    text = page.text
    assert '<a href="/workbench">Workbench</a>' in text
    assert 'action="/workbench/train" id="train-form"' in text
    for field in ("dataset_id", "target", "model_types", "tune_trials", "params", "task"):
        assert f'name="{field}"' in text
    for field in ("test_size", "seed", "register"):
        assert f'name="{field}"' in text
    assert f'name="dataset_id" value="{targets}"' in text
    assert 'name="task" value="targets"' in text
    twin = client.get("/workbench.json", params={"dataset": targets, "target": "label"}).json()
    assert twin["view"]["problem"] == "multiclass"
    assert twin["view"]["profile"]["target"]["class_balance"]["counts"] == {
        "a": 40,
        "b": 40,
        "c": 40,
    }
    for model in twin["view"]["model_types"]:
        assert f'name="model_types" value="{model["name"]}"' in text


def test_user_strings_are_escaped(client: TestClient) -> None:
    hostile = "<img src=x onerror=alert(1)>"
    frame = pd.DataFrame({hostile: ["<b>x</b>", "y"] * 10, "label": ["p", "q"] * 10})
    answer = _upload(client, "<script>.csv", _csv(frame))
    assert answer.status_code == 201, answer.text
    page = client.get("/workbench", params={"dataset": answer.json()["dataset_id"]})
    assert hostile not in page.text and "<b>x</b>" not in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text


def test_an_unreadable_workbook_is_named_as_uploaded_never_by_the_servers_folder(
    client: TestClient,
) -> None:
    """A zip that passes the size checks but holds no workbook: openpyxl's error is read
    from the staging folder, and the answer names the file as the user sent it."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("notes.txt", "not a workbook")
    before = _stored(client)
    for url in ("/api/datasets", "/workbench/upload"):
        answer = _upload(client, "sales.xlsx", archive.getvalue(), url=url)
        assert answer.status_code == 400, answer.text
        assert "cannot read sales.xlsx as an Excel workbook" in answer.text
        assert_no_leak(answer.text, _settings(client).workbench_dir)
    assert _stored(client) == before
