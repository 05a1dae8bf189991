"""Champion versus challenger on the same held-out rows, with the paired tests of
:mod:`flowscope.analysis.significance`.

Which rows: when the challenger's run kept its held-out features
(``evaluation/holdout.parquet``, which ``flowscope retrain`` logs), the champion's model
predicts those very rows again, so both are judged on the new hold-out. Otherwise the two
runs' kept predictions are paired, which is only sound when both were evaluated on the same
rows: runs whose training data differ (their MLflow dataset digests) are refused, as are
predictions whose row count or labels differ; the verdict then says why no comparison was
possible, and the challenger stays out.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from flowscope.analysis.significance import IncomparableError, compare_predictions, load_predictions
from flowscope.errors import FlowscopeError
from flowscope.mlflow_client import client_for
from flowscope.tracking.evaluation import metric_key_part

if TYPE_CHECKING:
    from flowscope.config import Settings
    from flowscope.registry.policy import BeatRule
    from flowscope.registry.state import VersionState

__all__ = ["HOLDOUT_ARTIFACT", "compare_champion", "load_holdout", "predictions_frame"]

HOLDOUT_ARTIFACT = "evaluation/holdout.parquet"


def compare_champion(
    settings: Settings,
    champion: VersionState,
    challenger: VersionState,
    rule: BeatRule,
    *,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Does ``challenger`` beat ``champion`` by ``rule``? Returns the verdict of
    :func:`compare_predictions` (``a`` the challenger, ``b`` the champion) under ``verdict``,
    the ``basis`` of the pairing, ``passed`` and a ``reason`` in words. A comparison that is
    impossible is not an error: ``comparable`` is False and ``reason`` says why."""
    result: dict[str, Any] = {
        "champion": champion.number,
        "challenger": challenger.number,
        "metric": rule.metric,
        "alpha": rule.alpha,
        "min_difference": rule.min_difference,
        "comparable": False,
        "passed": False,
        "basis": None,
        "verdict": None,
    }
    try:
        frame_challenger, frame_champion, basis = _paired_frames(settings, champion, challenger)
        verdict = compare_predictions(
            frame_challenger,
            frame_champion,
            metric=rule.metric,
            alpha=rule.alpha,
            n_resamples=n_resamples,
            seed=seed,
        )
    except FlowscopeError as exc:
        result["reason"] = (
            f"cannot compare v{challenger.number} with v{champion.number} on the same "
            f"held-out rows: {exc.message}"
        )
        return result
    improvement = verdict["difference"] * (1.0 if verdict["direction"] == "max" else -1.0)
    enough = improvement >= rule.min_difference or math.isclose(
        improvement, rule.min_difference, rel_tol=1e-9, abs_tol=1e-12
    )
    passed = verdict["better"] == "a" and enough
    result.update(comparable=True, basis=basis, verdict=verdict, passed=passed)
    result["reason"] = _reason(verdict, champion.number, rule, passed)
    return result


def _reason(verdict: dict[str, Any], champion: int, rule: BeatRule, passed: bool) -> str:
    mcnemar = verdict.get("mcnemar")
    tests = (
        f"{verdict['metric']} {verdict['value_a']:.4f} vs {verdict['value_b']:.4f} on "
        f"{verdict['n']} rows, difference {verdict['difference']:+.4f} "
        f"({1 - rule.alpha:.0%} CI [{verdict['ci_low']:+.4f}, {verdict['ci_high']:+.4f}]), "
        f"bootstrap {_p(verdict['p_bootstrap'], verdict['resamples'])}"
        + (f", McNemar p={mcnemar['p_value']:.3g}" if mcnemar else "")
    )
    if passed:
        return f"beats champion v{champion}: {tests}"
    if verdict["better"] == "b":
        return f"significantly worse than champion v{champion}: {tests}"
    if verdict["better"] is None:
        return (
            f"not significantly better than champion v{champion} at alpha {rule.alpha:g}: {tests}"
        )
    return (  # better, significantly, but not by enough
        f"better than champion v{champion} but by less than the required "
        f"{rule.min_difference:g}: {tests}"
    )


def _p(value: float, resamples: int) -> str:
    # a bootstrap p of 0 means "below the resolution", not impossible
    return f"p<{1 / resamples:.2g}" if value == 0 else f"p={value:.3g}"


def _paired_frames(
    settings: Settings, champion: VersionState, challenger: VersionState
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    if not challenger.run_id:
        raise IncomparableError(f"v{challenger.number} has no source run")
    if not champion.run_id:
        raise IncomparableError(f"v{champion.number} has no source run")
    kept = load_predictions(settings, challenger.run_id)
    if kept is None:
        raise IncomparableError(f"v{challenger.number}'s run logged no held-out predictions")
    holdout = load_holdout(settings, challenger.run_id)
    if holdout is not None:
        target = challenger.params.get("target")
        if not target or target not in holdout.columns:
            raise IncomparableError(
                f"v{challenger.number}'s {HOLDOUT_ARTIFACT} has no target column {target!r}"
            )
        from flowscope.registry.version_model import load_version_model

        model = load_version_model(settings, champion)
        frame = predictions_frame(model, holdout, target, f"champion v{champion.number}")
        kept = kept.sort_values("row", kind="stable").reset_index(drop=True)
        if len(frame) != len(kept) or not np.array_equal(
            frame["y_true"].to_numpy(), kept["y_true"].to_numpy()
        ):
            raise IncomparableError(
                f"v{challenger.number}'s kept hold-out does not match its logged predictions"
            )
        basis = (
            f"champion v{champion.number} re-predicted on challenger v{challenger.number}'s "
            f"{len(frame)} held-out rows"
        )
        return kept, frame, basis
    previous = load_predictions(settings, champion.run_id)
    if previous is None:
        raise IncomparableError(
            f"v{champion.number}'s run logged no held-out predictions, and v{challenger.number}'s "
            f"run kept no held-out features ({HOLDOUT_ARTIFACT}) to re-predict the champion on"
        )
    digests = (champion.dataset_digest, challenger.dataset_digest)
    if None not in digests and digests[0] != digests[1]:
        raise IncomparableError(
            f"the versions were trained on different data (dataset digests {digests[0]} and "
            f"{digests[1]}), and v{challenger.number}'s run kept no held-out features "
            f"({HOLDOUT_ARTIFACT}) to re-predict the champion on"
        )
    try:
        compare_predictions(kept, previous, n_resamples=1)  # only checks the pairing
    except IncomparableError as exc:
        raise IncomparableError(
            f"{exc.message}; re-predicting the champion needs the challenger's held-out "
            f"features ({HOLDOUT_ARTIFACT}), which its run did not keep"
        ) from None
    return kept, previous, "kept predictions of both versions on the same held-out rows"


def load_holdout(settings: Settings, run_id: str) -> pd.DataFrame | None:
    """The held-out features and target a run kept (``evaluation/holdout.parquet``), or None."""
    from flowscope.artifacts import ArtifactUnavailableError, downloaded

    try:
        with downloaded(client_for(settings), run_id, HOLDOUT_ARTIFACT) as local:
            return pd.read_parquet(local)
    except ArtifactUnavailableError:
        return None


def predictions_frame(model: Any, holdout: pd.DataFrame, target: str, who: str) -> pd.DataFrame:
    """``model``'s predictions on ``holdout`` in the layout ``log_evaluation`` keeps (``row``,
    ``y_true``, ``y_pred``, ``proba_<label>``), so they pair with logged predictions."""
    features = holdout.drop(columns=[target])
    needed = [str(name) for name in getattr(model, "feature_names_in_", [])]
    missing = [name for name in needed if name not in features.columns]
    if missing:
        raise IncomparableError(f"{who} needs features the hold-out lacks: {', '.join(missing)}")
    if needed:
        features = features[needed]
    try:
        predicted = model.predict(features)
        proba = model.predict_proba(features) if hasattr(model, "predict_proba") else None
    except (ValueError, KeyError, TypeError) as exc:
        raise IncomparableError(f"{who} cannot predict the hold-out: {exc}") from None
    truth = holdout[target].to_numpy()
    frame = pd.DataFrame({"row": np.arange(len(truth)), "y_true": truth, "y_pred": predicted})
    if not hasattr(model, "classes_"):  # a regression: what its logged predictions carry
        frame["residual"] = truth - predicted
    elif proba is not None:
        for index, label in enumerate(model.classes_):
            frame[f"proba_{metric_key_part(label)}"] = proba[:, index]
    return frame
