"""Reading a run's JSON artifacts (evaluation tables, profiles) back from the store."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from flowscope.config import Settings


def read_json_artifact(settings: Settings, run_id: str, path: str) -> Any | None:
    """The parsed JSON artifact at ``path`` of the run, or None when the run has none."""
    from flowscope.analysis.runs import client_for

    return download_json(client_for(settings), run_id, path)


def download_json(client: MlflowClient, run_id: str, path: str) -> Any | None:
    """The parsed JSON artifact at ``path`` through ``client``; None if absent or not JSON."""
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory() as folder:
        try:
            local = client.download_artifacts(run_id, path, folder)
        except (MlflowException, OSError):
            return None
        try:
            return json.loads(Path(local).read_text())
        except (OSError, ValueError):
            return None


def confusion_matrix_of(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The run's ``evaluation/confusion_matrix.json``: labels, counts, normalised."""
    data = read_json_artifact(settings, run_id, "evaluation/confusion_matrix.json")
    return data if isinstance(data, dict) and "counts" in data else None
