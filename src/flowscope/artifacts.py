"""Reading a run's artifacts back: download one into a temporary folder, read it, forget it.

MLflow's client downloads an artifact into a folder and returns the local path; the folder
is the caller's to delete. :func:`downloaded` owns that folder for the length of a
``with`` block, and the readers built on it answer None for an artifact that is not there,
which is what most callers mean by "the run logged none"; an artifact store that cannot be
reached (an object store that is down) is :class:`ArtifactStoreUnreachableError` instead,
never "none". This module imports nothing of flowscope's but its errors, so any package can
use it without an import cycle.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError, NotFoundError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "ArtifactStoreUnreachableError",
    "ArtifactUnavailableError",
    "artifact_store_reached",
    "downloaded",
    "read_json_artifact",
    "read_text_artifact",
]


class ArtifactUnavailableError(NotFoundError):
    """A run's artifact could not be downloaded: the run has none at that path, or the
    store would not hand it over. ``reason`` says which, in words fit for any client;
    ``detail`` is what the store said (it names where the artifacts are kept)."""

    def __init__(self, run_id: str, path: str, reason: str, detail: str | None = None) -> None:
        super().__init__(f"cannot read {path!r} of run {run_id}: {reason}", detail=detail)
        self.run_id = run_id
        self.path = path
        self.reason = reason


class ArtifactStoreUnreachableError(FlowscopeError):
    """The artifact store (an S3-compatible object store) did not answer: 503, since the
    same request succeeds once it is back."""

    status = 503


@contextmanager
def artifact_store_reached(what: str, where: str | None = None) -> Iterator[None]:
    """Turn the object store's connection failures inside the block into one
    :class:`ArtifactStoreUnreachableError` naming ``what`` was being read, instead of a
    botocore stack trace; the store's own words (its endpoint) and ``where`` (the artifact
    URI) are its detail, for the log.

    >>> with artifact_store_reached(f"model {name} version {version}"):
    ...     mlflow.artifacts.download_artifacts(uri)  # doctest: +SKIP
    """
    try:
        from botocore.exceptions import ConnectionError as StoreConnectionError
    except ImportError:  # no boto3: no S3 artifact store to fail
        yield
        return
    try:
        yield
    except StoreConnectionError as exc:
        raise ArtifactStoreUnreachableError(
            f"cannot read {what}: the artifact store cannot be reached; check "
            "MLFLOW_S3_ENDPOINT_URL and that the object store is running",
            detail=f"{where}: {exc}" if where else str(exc),
        ) from None


@contextmanager
def downloaded(client: MlflowClient, run_id: str, path: str) -> Iterator[Path]:
    """The local copy of artifact ``path`` (a file or a folder) of run ``run_id``, kept for
    the ``with`` block and deleted after it; :class:`ArtifactUnavailableError` when it
    cannot be downloaded.

    >>> with downloaded(client, run_id, "evaluation/predictions.parquet") as local:
    ...     frame = pd.read_parquet(local)  # doctest: +SKIP
    """
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="flowscope-artifact-") as folder:
        try:
            with artifact_store_reached(f"{path!r} of run {run_id}"):
                local = client.download_artifacts(run_id, path, folder)
        except MlflowException as exc:  # its message names the run's artifact location
            reason = (
                "the run has no such artifact"
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")
                else "the artifact store would not hand it over"
            )
            raise ArtifactUnavailableError(run_id, path, reason, exc.message) from None
        except OSError as exc:  # a local store: the message names its folder
            reason = (
                "the run has no such artifact"
                if isinstance(exc, FileNotFoundError)
                else "the artifact store would not hand it over"
            )
            raise ArtifactUnavailableError(run_id, path, reason, str(exc)) from None
        yield Path(local)


def read_text_artifact(client: MlflowClient, run_id: str, path: str) -> str | None:
    """The text of artifact ``path`` of the run; None when it is absent or unreadable."""
    try:
        with downloaded(client, run_id, path) as local:
            return local.read_text()
    except (ArtifactUnavailableError, OSError, UnicodeDecodeError):
        return None


def read_json_artifact(client: MlflowClient, run_id: str, path: str) -> Any | None:
    """The parsed JSON artifact at ``path`` of the run; None when absent or not JSON."""
    text = read_text_artifact(client, run_id, path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
