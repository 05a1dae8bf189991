"""Is one model significantly better than another on the same held-out rows?

Two paired tests on the predictions that ``log_evaluation`` logs as
``evaluation/predictions.parquet``: a paired bootstrap for any supported metric, and McNemar's
exact test on the rows where exactly one model is right. The compare page shows them for
pairs of runs; the registry uses them for champion versus challenger.

Decisions worth knowing:

- The bootstrap draws the same rows for both models. The pairing removes what both share
  (hard rows are hard for both), which is where the test's power comes from.
- The bootstrap p-value is the share of resamples whose difference lies on the other side of
  zero from the observed one (zero included), doubled and capped at 1. It agrees with the
  percentile interval: p < alpha about when the 1 - alpha interval excludes zero. Its
  resolution is 1 / resamples, so 0.0 reads "below 1 / resamples".
- A verdict is significant when the 1 - alpha interval excludes zero and, for accuracy,
  McNemar's p is below alpha as well: both test the same hypothesis, and requiring both keeps
  a promotion from resting on resampling noise. For other metrics McNemar is reported only.
- Precision, recall and F1 are macro averages over every class seen in y_true or either
  model's predictions, with ``zero_division=0`` as in the logged evaluation.
- Resamples where a metric is undefined (ROC AUC of a resample without positives, R² of a
  constant one) are dropped and the count used is reported as ``resamples``.
- ``significance_matrix`` does not correct for multiple comparisons: among many pairs a few
  are "significant" by chance at alpha = 0.05.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from flowscope.analysis._scorers import (
    BLOCK_CELLS,
    CLASSIFICATION_METRICS,
    PROBABILITY_METRICS,
    REGRESSION_METRICS,
    check_metric,
    resample,
    scorers,
)
from flowscope.analysis.best import default_direction
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.public_reason import public_reason
from flowscope.tracking import evaluation_checks as checks
from flowscope.tracking.evaluation import metric_key_part

if TYPE_CHECKING:
    from flowscope.config import Settings

__all__ = [
    "CLASSIFICATION_METRICS",
    "PREDICTIONS_ARTIFACT",
    "REGRESSION_METRICS",
    "IncomparableError",
    "compare_predictions",
    "load_predictions",
    "mcnemar_exact",
    "paired_bootstrap",
    "paired_verdict",
    "significance_between",
    "significance_matrix",
]

logger = logging.getLogger(__name__)

PREDICTIONS_ARTIFACT = "evaluation/predictions.parquet"


class IncomparableError(FlowscopeError):
    """Two predictions frames that cannot be compared: different rows, targets or problems."""


def paired_bootstrap(
    y_true: Any,
    pred_a: Any,
    pred_b: Any,
    metric: str = "accuracy",
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    proba_a: Any = None,
    proba_b: Any = None,
    labels: Any = None,
) -> dict[str, Any]:
    """Bootstrap ``metric(a) - metric(b)`` over the same resampled rows for both models.

    Returns the observed values and difference (a minus b, whatever the direction), its
    percentile interval at ``confidence``, the two-sided p-value described in the module
    docstring, ``direction`` (``"max"`` when higher is better, ``"min"`` for rmse, mae and
    log_loss), ``n`` rows and the ``resamples`` used. ``roc_auc`` and ``log_loss`` need
    ``proba_a``/``proba_b``: a positive-class score for a binary problem or an (n, k) matrix
    with columns in ``labels`` order (default: the sorted classes).

    >>> paired_bootstrap(y, model_a.predict(X), model_b.predict(X))["ci_low"]  # doctest: +SKIP
    """
    if n_resamples < 1:
        raise FlowscopeError(f"n_resamples must be at least 1, not {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise FlowscopeError(f"confidence must be between 0 and 1, not {confidence}")
    score_a, score_b, counts = scorers(metric, y_true, pred_a, pred_b, proba_a, proba_b, labels)
    n = int(counts.sum())
    everything = counts[None, :].astype(np.float64)
    value_a, value_b = float(score_a(everything)[0]), float(score_b(everything)[0])
    if np.isnan(value_a) or np.isnan(value_b):
        raise FlowscopeError(f"{metric} is undefined on these rows (y_true holds a single class?)")
    rng = np.random.default_rng(seed)
    block = max(1, BLOCK_CELLS // len(counts))
    differences = np.empty(n_resamples)
    for start in range(0, n_resamples, block):
        weights = resample(rng, counts, min(block, n_resamples - start))
        differences[start : start + len(weights)] = score_a(weights) - score_b(weights)
    differences = differences[~np.isnan(differences)]
    if differences.size == 0:
        raise FlowscopeError(f"{metric} is undefined on every resample of these {n} rows")
    observed = value_a - value_b
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(differences, [tail, 1.0 - tail])
    if observed > 0:
        p_value = min(1.0, 2.0 * float(np.mean(differences <= 0)))
    elif observed < 0:
        p_value = min(1.0, 2.0 * float(np.mean(differences >= 0)))
    else:
        p_value = 1.0
    return {
        "metric": metric,
        "direction": default_direction(metric),
        "value_a": value_a,
        "value_b": value_b,
        "difference": observed,
        "ci_low": float(low),
        "ci_high": float(high),
        "confidence": confidence,
        "p_value": p_value,
        "n": n,
        "resamples": int(differences.size),
    }


def mcnemar_exact(y_true: Any, pred_a: Any, pred_b: Any) -> dict[str, Any]:
    """McNemar's exact test: ``b01`` rows only model a gets right, ``b10`` rows only model b
    gets right, and the two-sided binomial p-value of min(b01, b10) out of b01 + b10 at 1/2
    (1.0 when the models never disagree on correctness). ``both_right`` and ``both_wrong``
    complete the 2x2 table."""
    from scipy.stats import binomtest

    truth = checks.labels_vector(y_true, "y_true")
    a, b = checks.labels_vector(pred_a, "pred_a"), checks.labels_vector(pred_b, "pred_b")
    for values, name in ((a, "pred_a"), (b, "pred_b")):
        checks.same_length(truth, values, name, "y_true")
    right_a, right_b = truth == a, truth == b
    b01 = int(np.count_nonzero(right_a & ~right_b))
    b10 = int(np.count_nonzero(~right_a & right_b))
    discordant = b01 + b10
    p_value = float(binomtest(min(b01, b10), discordant, 0.5).pvalue) if discordant else 1.0
    return {
        "b01": b01,
        "b10": b10,
        "both_right": int(np.count_nonzero(right_a & right_b)),
        "both_wrong": int(np.count_nonzero(~right_a & ~right_b)),
        "discordant": discordant,
        "p_value": p_value,
    }


def _aligned(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both frames sorted by row id, after checking they hold the same rows and targets."""
    for frame, name in ((frame_a, "a"), (frame_b, "b")):
        missing = [column for column in ("y_true", "y_pred") if column not in frame.columns]
        if missing:
            raise IncomparableError(
                f"predictions {name} have no {' or '.join(missing)} column "
                "(quantile evaluations have no point predictions to compare)"
            )
    if len(frame_a) != len(frame_b):
        raise IncomparableError(
            f"the predictions are on different data: {len(frame_a)} rows against {len(frame_b)}"
        )
    if "row" in frame_a.columns and "row" in frame_b.columns:
        frame_a = frame_a.sort_values("row", kind="stable").reset_index(drop=True)
        frame_b = frame_b.sort_values("row", kind="stable").reset_index(drop=True)
        if not np.array_equal(frame_a["row"].to_numpy(), frame_b["row"].to_numpy()):
            raise IncomparableError("the predictions are on different data: the row ids differ")
    truth_a, truth_b = frame_a["y_true"].to_numpy(), frame_b["y_true"].to_numpy()
    if truth_a.dtype.kind != truth_b.dtype.kind:
        raise IncomparableError(
            f"the predictions are on different data: y_true is {truth_a.dtype} in one and "
            f"{truth_b.dtype} in the other"
        )
    if not np.array_equal(truth_a, truth_b):
        differing = int(np.count_nonzero(truth_a != truth_b))
        raise IncomparableError(
            f"the predictions are on different data: y_true differs on {differing} of "
            f"{len(truth_a)} rows"
        )
    if ("residual" in frame_a.columns) != ("residual" in frame_b.columns):
        raise IncomparableError("one run is a regression and the other a classification")
    return frame_a, frame_b


def _labels_and_proba(frame_a: pd.DataFrame, frame_b: pd.DataFrame) -> tuple[list[Any], Any, Any]:
    """Class labels in the order of the ``proba_<label>`` columns, and both matrices."""
    columns = [column for column in frame_a.columns if column.startswith("proba_")]
    if not columns:
        raise IncomparableError("run a logged no probabilities (proba_<label> columns)")
    if columns != [column for column in frame_b.columns if column.startswith("proba_")]:
        raise IncomparableError("the runs' probability columns differ (different classes?)")
    seen = pd.unique(
        np.concatenate(
            [frame[c].to_numpy() for frame in (frame_a, frame_b) for c in ("y_true", "y_pred")]
        )
    )
    by_part = {metric_key_part(checks.native(value)): checks.native(value) for value in seen}
    # A class nobody predicted and no row holds keeps its column name as a stand-in label.
    labels = [by_part.get(column[len("proba_") :], column) for column in columns]
    return labels, frame_a[columns].to_numpy(), frame_b[columns].to_numpy()


def compare_predictions(
    frame_a: pd.DataFrame,
    frame_b: pd.DataFrame,
    *,
    metric: str | None = None,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """The verdict on two logged predictions frames of the same held-out rows: bootstrap
    interval and p-value of ``metric(a) - metric(b)`` (default accuracy, or rmse for a
    regression), McNemar's test for classifications, whether the difference is significant
    at ``alpha`` and which model is ``better`` (None when not significant). ``a`` and ``b``
    hold the metric values, repeated as ``value_a`` and ``value_b`` (the run-level functions
    put run ids in ``a`` and ``b``). Frames on different rows or targets raise
    :class:`IncomparableError` (a :class:`FlowscopeError`) saying why."""
    if not 0.0 < alpha < 1.0:
        raise FlowscopeError(f"alpha must be between 0 and 1, not {alpha}")
    frame_a, frame_b = _aligned(frame_a, frame_b)
    regression = "residual" in frame_a.columns
    metric = metric or ("rmse" if regression else "accuracy")
    check_metric(metric)
    if (metric in REGRESSION_METRICS) != regression:
        problem = "a regression" if regression else "a classification"
        raise IncomparableError(f"{metric} does not apply: the runs are {problem}")
    labels, proba_a, proba_b = None, None, None
    if metric in PROBABILITY_METRICS:
        labels, proba_a, proba_b = _labels_and_proba(frame_a, frame_b)
    truth = frame_a["y_true"].to_numpy()
    pred_a, pred_b = frame_a["y_pred"].to_numpy(), frame_b["y_pred"].to_numpy()
    boot = paired_bootstrap(
        truth,
        pred_a,
        pred_b,
        metric,
        n_resamples=n_resamples,
        confidence=1.0 - alpha,
        seed=seed,
        proba_a=proba_a,
        proba_b=proba_b,
        labels=labels,
    )
    mcnemar = None if regression else mcnemar_exact(truth, pred_a, pred_b)
    significant = boot["ci_low"] > 0 or boot["ci_high"] < 0
    if metric == "accuracy" and mcnemar is not None:
        significant = significant and mcnemar["p_value"] < alpha
    better = None
    if significant:
        a_higher = boot["difference"] > 0
        better = "a" if a_higher == (boot["direction"] == "max") else "b"
    return {
        "metric": metric,
        "direction": boot["direction"],
        "a": boot["value_a"],
        "b": boot["value_b"],
        "value_a": boot["value_a"],
        "value_b": boot["value_b"],
        "difference": boot["difference"],
        "ci_low": boot["ci_low"],
        "ci_high": boot["ci_high"],
        "p_bootstrap": boot["p_value"],
        "mcnemar": mcnemar,
        "significant": bool(significant),
        "better": better,
        "alpha": alpha,
        "n": boot["n"],
        "resamples": boot["resamples"],
    }


def load_predictions(settings: Settings, run_id: str) -> pd.DataFrame | None:
    """The run's held-out predictions (``evaluation/predictions.parquet``), or None when it
    logged none; an unknown run is a :class:`NotFoundError`."""
    from mlflow.exceptions import MlflowException

    from flowscope.artifacts import ArtifactUnavailableError, downloaded
    from flowscope.mlflow_client import client_for

    client = client_for(settings)
    try:
        client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(f"no run {run_id!r}") from None
        raise FlowscopeError(
            f"cannot read run {run_id!r}: {public_reason(exc)}", detail=exc.message
        ) from None
    try:
        with downloaded(client, run_id, PREDICTIONS_ARTIFACT) as local:
            try:
                return pd.read_parquet(local)
            except (OSError, ValueError) as exc:
                raise FlowscopeError(
                    f"run {run_id}'s {PREDICTIONS_ARTIFACT} is unreadable: {exc}"
                ) from None
    except ArtifactUnavailableError:
        return None


def _no_predictions(run_id: str) -> str:
    return f"run {run_id} has no {PREDICTIONS_ARTIFACT} (it logged no evaluation)"


def _with_runs(verdict: dict[str, Any], run_a: str, run_b: str) -> dict[str, Any]:
    # Between runs, "a" and "b" name the runs (what the compare page shows); the metric
    # values stay in value_a and value_b.
    return {**verdict, "a": run_a, "b": run_b}


def significance_between(
    settings: Settings,
    run_a: str,
    run_b: str,
    metric: str | None = None,
    *,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
    strict: bool = False,
) -> dict[str, Any] | None:
    """:func:`compare_predictions` on two runs' logged predictions, with the run ids as ``a``
    and ``b`` (values in ``value_a``, ``value_b``). None when either run has no predictions
    or they are on different data (the reason is logged); with ``strict=True`` that raises a
    :class:`FlowscopeError` naming the reason instead, as the registry wants for its decision
    record. An unsupported metric or an unknown run always raises."""
    if metric is not None:
        check_metric(metric)  # a bad metric is the caller's error, not a missing comparison
    frames = []
    for run_id in (run_a, run_b):
        frame = load_predictions(settings, run_id)
        if frame is None:
            _not_comparable(_no_predictions(run_id), strict, NotFoundError)
            return None
        frames.append(frame)
    try:
        verdict = compare_predictions(
            frames[0], frames[1], metric=metric, alpha=alpha, n_resamples=n_resamples, seed=seed
        )
    except IncomparableError as exc:
        _not_comparable(f"runs {run_a} and {run_b}: {exc.message}", strict, IncomparableError)
        return None
    return _with_runs(verdict, run_a, run_b)


def paired_verdict(settings: Settings, winner: str, runner_up: str, metric: str) -> dict[str, Any]:
    """What the best-run page and the comparison report say of the winner against the
    runner-up: ``{"available": True, **verdict}`` from :func:`significance_between`, or
    ``{"available": False, "reason": ...}`` when the test cannot be run (no predictions, a
    metric the tests do not cover, different held-out rows)."""
    try:
        verdict = significance_between(settings, winner, runner_up, metric)
    except FlowscopeError as exc:
        return {"available": False, "reason": exc.message}
    if verdict is None:
        return {"available": False, "reason": "the runs did not keep held-out predictions"}
    return {"available": True, **verdict}


def _not_comparable(reason: str, strict: bool, error: type[FlowscopeError]) -> None:
    if strict:
        raise error(reason)
    logger.info("no significance test: %s", reason)


def significance_matrix(
    settings: Settings,
    run_ids: Sequence[str],
    metric: str | None = None,
    *,
    alpha: float = 0.05,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Verdicts for every pair of ``run_ids`` (duplicates removed), for the compare page:
    ``{"runs", "metric", "pairs": [verdict with run ids], "skipped": [{"run_id", "reason"}]
    (runs without predictions), "incomparable": [{"a", "b", "reason"}]}``. Each pair costs one
    bootstrap, so 50 runs of 10,000 rows take minutes; no multiple-comparison correction."""
    if metric is not None:
        check_metric(metric)
    runs = list(dict.fromkeys(run_ids))
    frames: dict[str, pd.DataFrame] = {}
    skipped = []
    for run_id in runs:
        frame = load_predictions(settings, run_id)
        if frame is None:
            skipped.append({"run_id": run_id, "reason": _no_predictions(run_id)})
        else:
            frames[run_id] = frame
    pairs, incomparable = [], []
    for run_a, run_b in itertools.combinations(frames, 2):
        try:
            verdict = compare_predictions(
                frames[run_a],
                frames[run_b],
                metric=metric,
                alpha=alpha,
                n_resamples=n_resamples,
                seed=seed,
            )
        except IncomparableError as exc:
            incomparable.append({"a": run_a, "b": run_b, "reason": exc.message})
            continue
        pairs.append(_with_runs(verdict, run_a, run_b))
    return {
        "runs": runs,
        "metric": metric or (pairs[0]["metric"] if pairs else None),
        "pairs": pairs,
        "skipped": skipped,
        "incomparable": incomparable,
    }
