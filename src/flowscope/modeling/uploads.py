"""The workbench's data sets: uploaded files kept with their digest and profile, and the
built-in ones, each found by a ``dataset_id``.

An accepted upload lives in ``<workbench_dir>/datasets/<dataset_id>/`` as the file itself,
``meta.json`` (dataset_id, filename, sha256, size, rows, columns, uploaded_at) and
``profile.json`` (:func:`flowscope.tracking.profile.profile_dataset`). The id is the first
16 hex digits of the file's sha256, so the same file uploaded twice is one data set. The
folder is written under a temporary name and renamed into place, so a reader never sees
half of it, and a refused upload leaves nothing behind. Built-in data sets have the ids
``builtin:<name>`` (``builtin:iris`` ...) and bring their target.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import warnings
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.modeling.catalog import CATALOG, models_for
from flowscope.modeling.data import BUILTIN_DATASETS, load_builtin, read_table
from flowscope.modeling.file_checks import check_table_file
from flowscope.tracking.profile import profile_dataset

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.config import Settings

BUILTIN_PREFIX = "builtin:"
PREVIEW_ROWS = 20
# Column names that usually hold what is to be predicted, tried before the last column.
TARGET_NAMES = ("target", "label", "class", "y", "outcome", "species")
_ID = re.compile(r"[0-9a-f]{16}")
_SLUG = re.compile(r"[^a-z0-9]+")


def datasets_dir(settings: Settings) -> Path:
    return Path(settings.workbench_dir) / "datasets"


def staging_dir(settings: Settings) -> Path:
    """Where uploads land while they are checked: beside the data sets, on the same file
    system, so an accepted one is renamed into place rather than copied."""
    folder = datasets_dir(settings) / ".staging"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def store_upload(
    settings: Settings, path: Path, filename: str, sha256: str, owner: str | None = None
) -> dict[str, Any]:
    """Check, parse and keep the uploaded file at ``path`` (taken over: it is moved, or
    removed when refused) and return its ``meta.json``. ``owner`` (the signed-in user) is
    one of those who may use it from then on: see :func:`may_use_dataset`.

    Refused with a 400 naming the problem: a type other than CSV/TSV/TXT/XLSX, binary or
    undecodable text, an unsafe workbook (see :mod:`flowscope.modeling.file_checks`), an
    empty file, a header without rows, no header, duplicate column names.
    """
    dataset_id = sha256[:16].lower()
    if not _ID.fullmatch(dataset_id):
        raise FlowscopeError(f"not a sha256 digest: {sha256!r}")
    existing = datasets_dir(settings) / dataset_id / "meta.json"
    name = _stored_name(filename)
    staging = Path(tempfile.mkdtemp(prefix="dataset-", dir=staging_dir(settings)))
    try:
        kept = staging / name
        shutil.move(path, kept)
        if existing.exists():
            _add_owner(existing.parent, owner)
            return _read_meta(existing)
        check_table_file(kept, name, settings.upload_max_bytes)
        frame = _read_upload(kept, name)
        _check_finite(frame, name)
        meta = {
            "dataset_id": dataset_id,
            "filename": name,
            "sha256": sha256.lower(),
            "size": kept.stat().st_size,
            "rows": int(frame.shape[0]),
            "columns": int(frame.shape[1]),
            "column_names": [str(column) for column in frame.columns],
            "uploaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_json(staging / "profile.json", profile_dataset(frame))
        _write_json(staging / "meta.json", meta)
        try:
            staging.rename(existing.parent)
        except OSError:
            if existing.exists():  # the same file, accepted meanwhile by another request
                _add_owner(existing.parent, owner)
                return _read_meta(existing)
            raise
        _add_owner(existing.parent, owner)
        return meta
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _owner_mark(folder: Path, user: str) -> Path:
    # a digest, not the name: a user name is no safe file name
    return folder / "owners" / hashlib.sha256(user.encode()).hexdigest()


def _add_owner(folder: Path, owner: str | None) -> None:
    """One empty file per user who uploaded these bytes: no file is ever rewritten, so two
    uploads at once cannot lose one."""
    if owner is not None:
        mark = _owner_mark(folder, owner)
        mark.parent.mkdir(exist_ok=True)
        mark.touch()


def may_use_dataset(settings: Settings, dataset_id: str, user: str | None) -> bool:
    """Whether ``user`` may see and train on the data set: a built-in one, or one they
    uploaded (the same bytes uploaded by two users are one data set of both). ``None``:
    no sign-in on this server, everyone may."""
    if user is None or dataset_id.startswith(BUILTIN_PREFIX):
        return True
    try:
        folder = dataset_folder(settings, dataset_id)
    except NotFoundError:
        return True  # the caller's own lookup names it as missing
    return _owner_mark(folder, user).exists()


def _stored_name(filename: str) -> str:
    name = Path(filename).name
    if name != filename or name.startswith(".") or name in ("", "meta.json", "profile.json"):
        return f"data{Path(name).suffix.lower()}"
    return name


def _read_upload(path: Path, filename: str) -> pd.DataFrame:
    frame = read_table(path, filename)  # named as uploaded, never by the server's folder
    frame.columns = [str(column) for column in frame.columns]
    return frame


def _check_finite(frame: pd.DataFrame, filename: str) -> None:
    """No model learns from an infinite number (scikit-learn refuses them at fit): refuse
    the file now, naming the columns, rather than the training job later."""
    import numpy as np

    numbers = frame.select_dtypes("number")
    infinite = [
        str(column)
        for column in numbers.columns
        if np.isinf(numbers[column].to_numpy(dtype=float)).any()
    ]
    if infinite:
        shown = ", ".join(repr(column[:60]) for column in infinite[:5])
        raise FlowscopeError(
            f"{filename}: column(s) {shown} hold infinite values; replace them with numbers, "
            "or leave those cells empty"
        )


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, allow_nan=False, default=str), encoding="utf-8")


def _read_meta(path: Path) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return meta


def dataset_folder(settings: Settings, dataset_id: str) -> Path:
    """The folder of an uploaded data set; an id that is not one (or not a valid id at all,
    such as a path) is a 404 naming it."""
    if isinstance(dataset_id, str) and _ID.fullmatch(dataset_id):
        folder = datasets_dir(settings) / dataset_id
        if (folder / "meta.json").is_file():
            return folder
    raise NotFoundError(
        f"no data set {dataset_id!r}; upload one, or use a built-in: "
        + ", ".join(BUILTIN_PREFIX + name for name in BUILTIN_DATASETS)
    )


def load_dataset(settings: Settings, dataset_id: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The data set's frame (column names as strings) and its meta: ``meta.json`` for an
    upload, or for ``builtin:<name>`` the name, its ``target``, rows and columns."""
    if isinstance(dataset_id, str) and dataset_id.startswith(BUILTIN_PREFIX):
        name = dataset_id[len(BUILTIN_PREFIX) :]
        if name not in BUILTIN_DATASETS:
            raise NotFoundError(
                f"no built-in data set {name!r}; built-in: {', '.join(BUILTIN_DATASETS)}"
            )
        frame, target = load_builtin(name)
        return frame, _builtin_meta(name, target, frame.shape)
    folder = dataset_folder(settings, dataset_id)
    meta = _read_meta(folder / "meta.json")
    return _read_upload(folder / meta["filename"], meta["filename"]), meta


def _builtin_meta(name: str, target: str, shape: tuple[int, int]) -> dict[str, Any]:
    return {
        "dataset_id": BUILTIN_PREFIX + name,
        "name": name,
        "filename": None,
        "builtin": True,
        "target": target,
        "rows": int(shape[0]),
        "columns": int(shape[1]),
    }


@lru_cache(maxsize=len(BUILTIN_DATASETS))
def _builtin_summary(name: str) -> tuple[str, tuple[int, int]]:
    frame, target = load_builtin(name)
    return target, (int(frame.shape[0]), int(frame.shape[1]))


def list_datasets(settings: Settings, user: str | None = None) -> list[dict[str, Any]]:
    """Uploaded data sets (newest first; ``user``'s only, when given), then the built-in
    ones."""
    uploaded = []
    folder = datasets_dir(settings)
    if folder.is_dir():
        for meta_path in folder.glob("*/meta.json"):
            if user is not None and not _owner_mark(meta_path.parent, user).exists():
                continue
            if _ID.fullmatch(meta_path.parent.name):
                uploaded.append({**_read_meta(meta_path), "builtin": False})
    uploaded.sort(key=lambda meta: str(meta.get("uploaded_at", "")), reverse=True)
    builtin = [_builtin_meta(name, *_builtin_summary(name)) for name in BUILTIN_DATASETS]
    return uploaded + builtin


def dataset_view(settings: Settings, dataset_id: str, target: str | None = None) -> dict[str, Any]:
    """What the workbench shows of a data set and the train form needs: its meta, the
    first rows (``preview``), the profile with the target's class balance, the suggested
    and the chosen target, the problem it makes and the catalog's model types for it.

    With no ``target`` (None) the suggested one is used, if any column makes a sound
    target; ``""`` chooses none. A ``target`` that cannot be trained on (no such column,
    constant, all missing, too many classes, too few rows) is a 400 naming the column.
    """
    frame, meta = load_dataset(settings, dataset_id)
    suggested = meta.get("target") or suggest_target(frame)
    chosen = suggested if target is None else (target or None)
    problem, notes = check_target(frame, chosen) if chosen else (None, [])
    kind = None
    if problem is not None:
        kind = "regression" if problem == "regression" else "classification"
    return {
        "dataset": meta,
        "default_task": default_task(meta),
        "preview": preview(frame),
        "profile": profile_dataset(frame, chosen),
        "suggested_target": suggested,
        "target": chosen,
        "problem": problem,
        "problem_kind": kind,
        "warnings": notes,
        "model_types": [
            {"name": name, "description": CATALOG[name].description}
            for name in (models_for(problem) if problem else [])
        ],
    }


def check_target(frame: pd.DataFrame, target: str) -> tuple[str, list[str]]:
    """The problem ``target`` makes (binary, multiclass or regression) and the warnings
    on the way (rows without a target); a bad target is a 400 naming the column."""
    from flowscope.modeling.data import validate_training_data

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = validate_training_data(frame, target)
    return problem, [str(warning.message) for warning in caught]


def suggest_target(frame: pd.DataFrame) -> str | None:
    """A column named like a target (``target``, ``label``, ``class`` ...), else the last
    column, if it makes a sound target; else None (the user picks)."""
    named = [str(c) for c in frame.columns if str(c).strip().lower() in TARGET_NAMES]
    for candidate in [*named, str(frame.columns[-1])]:
        try:
            check_target(frame, candidate)
        except FlowscopeError:
            continue
        return candidate
    return None


def default_task(meta: dict[str, Any]) -> str:
    """The task (experiment) name the train form proposes: the data set's name, from the
    file name for an upload (``Customer churn.csv`` gives ``customer-churn``)."""
    if meta.get("builtin"):
        return str(meta["name"])
    stem = Path(str(meta.get("filename") or "dataset")).stem
    return _SLUG.sub("-", stem.lower()).strip("-") or "dataset"


def preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> dict[str, Any]:
    """The first ``rows`` rows as ``{"columns": [...], "rows": [[...], ...]}``, JSON-safe:
    missing values and non-finite numbers are None, numpy scalars plain Python."""
    head = frame.head(rows)
    return {
        "columns": [str(column) for column in head.columns],
        "rows": [[_cell(value) for value in row] for row in head.itertuples(index=False)],
    }


def _cell(value: Any) -> Any:
    import math

    import pandas as pd

    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
