"""What the training pipeline adds to a run: explanations of held-out rows and fairness."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.tracking.run import Run

logger = logging.getLogger(__name__)

# Held-out rows explained during training: enough for stable importances and plots.
TRAINING_ROWS = 1000


def explain_training_run(
    run: Run,
    pipeline: Any,
    X_test: pd.DataFrame,
    y_test: pd.Series,
    *,
    explain: bool = True,
    sensitive: str | None = None,
) -> None:
    """Log SHAP explanations of up to 1,000 held-out rows (timed as ``explain_time_s``) and,
    with ``sensitive``, fairness by the groups of that column.

    A model or data that cannot be explained never fails the training run: the run gets the
    tag ``flowscope.explain.skipped`` with the reason instead.
    """
    from flowscope.explain.fairness import log_fairness
    from flowscope.explain.records import SKIPPED_TAG, log_explanations

    if explain:
        reason = None
        with run.timer("explain"):
            try:
                log_explanations(run, pipeline, X_test, max_rows=TRAINING_ROWS)
            except FlowscopeError as exc:  # unsupported model or data, or shap missing
                reason = str(exc)
            except Exception as exc:  # an explainer's own failure must not lose the model
                logger.warning("flowscope: explaining the model failed", exc_info=True)
                reason = f"explaining failed: {type(exc).__name__}: {exc}"
        if reason is not None:
            run.set_tags({SKIPPED_TAG: reason})
    if sensitive is not None:
        log_fairness(run, y_test, pipeline.predict(X_test), X_test[sensitive])
