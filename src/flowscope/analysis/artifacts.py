"""Reading a run's evaluation tables back from the store."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowscope.artifacts import read_json_artifact
from flowscope.mlflow_client import client_for

if TYPE_CHECKING:
    from flowscope.config import Settings


def confusion_matrix_of(settings: Settings, run_id: str) -> dict[str, Any] | None:
    """The run's ``evaluation/confusion_matrix.json``: labels, counts, normalised."""
    data = read_json_artifact(client_for(settings), run_id, "evaluation/confusion_matrix.json")
    return data if isinstance(data, dict) and "counts" in data else None
