"""A version's fitted model: downloaded from its source run's artifacts and loaded with
flowscope's skops allow-list, for the champion's re-predictions and the deployed report."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError
from flowscope.mlflow_client import client_for
from flowscope.registry.uris import run_artifact_path

if TYPE_CHECKING:
    from flowscope.config import Settings
    from flowscope.registry.state import VersionState

__all__ = ["downloaded_model", "load_version_model"]


@contextmanager
def downloaded_model(
    settings: Settings, run_id: str | None, source: str, label: str
) -> Iterator[Path]:
    """The model folder of a version registered from run ``run_id`` at ``source``,
    downloaded into a temporary folder for the block; ``label`` names it in errors."""
    from mlflow.exceptions import MlflowException

    from flowscope.artifacts import ArtifactUnavailableError, downloaded

    client = client_for(settings)
    if not run_id:
        raise FlowscopeError(f"{label} has no source run to load its model from")
    try:
        artifact_uri = client.get_run(run_id).info.artifact_uri
    except MlflowException:
        raise FlowscopeError(f"{label}'s source run {run_id} no longer exists") from None
    relative = run_artifact_path(source, run_id, artifact_uri)
    if relative is None:
        raise FlowscopeError(
            f"{label}'s model is not an artifact of its run; flowscope loads models it "
            "logged itself",
            detail=f"its source is {source}",
        )
    with contextlib.ExitStack() as stack:
        try:
            local = stack.enter_context(downloaded(client, run_id, relative))
        except ArtifactUnavailableError as exc:
            raise FlowscopeError(
                f"cannot download {label}'s model: {exc.reason}", detail=exc.detail
            ) from None
        yield local


def load_version_model(settings: Settings, version: VersionState) -> Any:
    """The version's fitted model, loaded with flowscope's skops allow-list."""
    from flowscope.tracking.models import load_model

    label = f"version {version.number}"
    with downloaded_model(settings, version.run_id, version.source, label) as path:
        return load_model(path)
