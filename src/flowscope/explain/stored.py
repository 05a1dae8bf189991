"""Explaining a run already in the store: ``flowscope explain RUN_ID``.

The run's logged model is loaded (with flowscope's skops allow-list) and explained on the
held-out rows the training run stored in ``explain/rows.parquet``, or on the feature rows
of a CSV file; the result is logged into that same run through MLflow's client.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.artifacts import downloaded
from flowscope.errors import FlowscopeError
from flowscope.explain.records import ROWS_ARTIFACT, SKIPPED_TAG, log_explanation

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from flowscope.config import Settings
    from flowscope.explain.explanation import Explanation

MODEL_ARTIFACT = "model"


def explain_stored_run(
    settings: Settings,
    run_id: str,
    *,
    rows: int = 1000,
    data: str | Path | None = None,
) -> Explanation:
    """Explain the model of run ``run_id`` on at most ``rows`` rows and log the result into
    the run (``explain/`` artifacts, ``shap_additivity_error``).

    The rows are those of ``data`` (a CSV of feature rows; other columns are ignored) when
    given, else the held-out rows the training run stored. A run without a model, or
    without stored rows and no ``data``, is a :class:`~flowscope.errors.FlowscopeError`.
    """
    from flowscope.analysis.run_detail import get_run
    from flowscope.explain.shap_values import explain_model
    from flowscope.mlflow_client import client_for
    from flowscope.tracking.models import load_model

    client = client_for(settings)
    get_run(client, run_id)
    if not client.list_artifacts(run_id, MODEL_ARTIFACT):
        raise FlowscopeError(
            f"run {run_id} has no logged model (no {MODEL_ARTIFACT!r} artifact); "
            "there is nothing to explain"
        )
    with downloaded(client, run_id, MODEL_ARTIFACT) as local:
        model = load_model(local)
    frame = _rows(client, run_id, data, model)
    explanation = explain_model(model, frame, max_rows=rows)
    with tempfile.TemporaryDirectory(prefix="flowscope-explain-") as folder:
        sink = _FolderSink(Path(folder))
        log_explanation(sink, explanation)
        client.log_artifacts(run_id, str(sink.root))
        for key, value in sink.metrics.items():
            client.log_metric(run_id, key, value)
    if SKIPPED_TAG in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, SKIPPED_TAG)
    return explanation


def _rows(client: MlflowClient, run_id: str, data: str | Path | None, model: Any) -> pd.DataFrame:
    import pandas as pd

    if data is not None:
        path = Path(data)
        if not path.is_file():
            raise FlowscopeError(f"--data {str(path)!r}: no such file")
        try:
            frame = pd.read_csv(path)
        except (ValueError, OSError) as exc:
            raise FlowscopeError(f"cannot read {str(path)!r} as CSV: {exc}") from None
        return _model_columns(frame, model, str(path))
    parent = ROWS_ARTIFACT.rsplit("/", 1)[0]
    stored = {item.path for item in client.list_artifacts(run_id, parent)}
    if ROWS_ARTIFACT not in stored:
        raise FlowscopeError(
            f"run {run_id} stored no held-out rows ({ROWS_ARTIFACT}); pass --data FILE, a CSV "
            "of feature rows, to explain its model on"
        )
    with downloaded(client, run_id, ROWS_ARTIFACT) as local:
        stored_rows = pd.read_parquet(local)
    return _model_columns(stored_rows, model, ROWS_ARTIFACT)


def _model_columns(frame: pd.DataFrame, model: Any, source: str) -> pd.DataFrame:
    """The columns the model was fitted on, in its order; a missing one is an error."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        return frame
    expected = [str(name) for name in names]
    missing = [name for name in expected if name not in frame.columns]
    if missing:
        raise FlowscopeError(f"{source} lacks the model's input columns: {', '.join(missing)}")
    if frame.empty:
        raise FlowscopeError(f"{source} has no rows")
    return frame[expected]


class _FolderSink:
    """Collects what ``log_explanation`` logs as files under ``root`` and metric values."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.metrics: dict[str, float] = {}

    def _path(self, artifact_file: str) -> Path:
        path = self.root / artifact_file
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def log_table(self, frame: pd.DataFrame, artifact_file: str) -> None:
        frame.to_parquet(self._path(artifact_file), index=False)

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self._path(artifact_file).write_text(json.dumps(data, indent=2, default=str))

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        figure.savefig(self._path(artifact_file), bbox_inches="tight")

    def log_metrics(self, metrics: dict[str, float]) -> None:
        self.metrics.update(metrics)
