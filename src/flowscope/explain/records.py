"""Logging an explanation into a run: the ``explain/`` artifacts and the additivity metric."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.explain.explanation import Explanation

SKIPPED_TAG = "flowscope.explain.skipped"
VALUES_ARTIFACT = "explain/shap_values.parquet"
ROWS_ARTIFACT = "explain/rows.parquet"
SUMMARY_ARTIFACT = "explain/summary.json"
BAR_ARTIFACT = "explain/bar.png"
BEESWARM_ARTIFACT = "explain/beeswarm.png"


class RecordSink(Protocol):
    """What an explanation is logged into: a :class:`~flowscope.tracking.run.Run`, or the
    CLI's writer into an existing run."""

    def log_table(self, frame: pd.DataFrame, artifact_file: str) -> None: ...

    def log_dict(self, data: Any, artifact_file: str) -> None: ...

    def log_figure(self, figure: Any, artifact_file: str) -> None: ...

    def log_metrics(self, metrics: dict[str, float]) -> None: ...


def log_explanations(
    sink: RecordSink,
    model: Any,
    X: Any,
    background: Any = None,
    max_rows: int = 1000,
) -> Explanation:
    """Explain ``model`` on ``X`` (see :func:`~flowscope.explain.explain_model`) and log
    ``explain/shap_values.parquet``, ``explain/rows.parquet`` (the rows explained),
    ``explain/summary.json``, ``explain/bar.png``, ``explain/beeswarm.png`` and the metric
    ``shap_additivity_error``."""
    from flowscope.explain.shap_values import explain_model

    explanation = explain_model(model, X, background=background, max_rows=max_rows)
    log_explanation(sink, explanation)
    return explanation


def log_explanation(sink: RecordSink, explanation: Explanation) -> None:
    """Log an explanation already computed."""
    from flowscope.explain.plots import bar_figure, beeswarm_figure

    # Everything is built before anything is logged: a failure leaves no partial record.
    values, rows, summary = explanation.frame(), _storable(explanation.data), explanation.summary()
    bar, beeswarm = bar_figure(explanation), beeswarm_figure(explanation)
    sink.log_table(values, VALUES_ARTIFACT)
    sink.log_table(rows, ROWS_ARTIFACT)
    sink.log_dict(summary, SUMMARY_ARTIFACT)
    sink.log_figure(bar, BAR_ARTIFACT)
    sink.log_figure(beeswarm, BEESWARM_ARTIFACT)
    sink.log_metrics({"shap_additivity_error": explanation.additivity_error})


def _storable(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows with text columns as strings: parquet refuses object columns of mixed types."""
    import pandas as pd

    stored = frame.copy()
    for column in stored.columns:
        if stored[column].dtype == object:
            stored[column] = stored[column].map(
                lambda value: None if pd.isna(value) else str(value)
            )
    stored.columns = [str(column) for column in stored.columns]
    return stored
