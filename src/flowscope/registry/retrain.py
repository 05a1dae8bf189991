"""``retrain``: train a challenger like the champion on new data, judge both on the new
hold-out, and let the policy decide.

The challenger gets the champion's model type and parameters (``model_type`` and
``model.*`` of the champion's source run) and is trained by the ordinary training pipeline,
so its run is a full training run registered as a new version. Its held-out rows are then
rebuilt with the same split the pipeline made and kept with its run as
``evaluation/holdout.parquet``, checked row for row against the predictions it logged; the
champion's model predicts those rows, and :func:`~flowscope.registry.promotion.promote`
applies the policy to the new version only.

When the new data overlaps what the champion was trained on, some held-out rows are rows
the champion has seen, which favours it: the comparison is then conservative for the
challenger.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flowscope.errors import FlowscopeError
from flowscope.mlflow_client import client_for
from flowscope.registry.tags import RETRAINED_FROM_TAG

if TYPE_CHECKING:
    import pandas as pd

    from flowscope.config import Settings
    from flowscope.registry.policy import Policy
    from flowscope.registry.promotion import PromotionResult

__all__ = ["RetrainResult", "champion_recipe", "holdout_split", "retrain"]

@dataclass
class RetrainResult:
    """The challenger's run and version, and what the policy made of it."""

    model: str
    champion: int
    challenger: int
    run_id: str
    metrics: dict[str, float]
    promotion: PromotionResult

    @property
    def decision(self) -> dict[str, Any]:
        """The challenger's decision in the promotion."""
        return next(
            d.as_dict() for d in self.promotion.plan.decisions if d.version == self.challenger
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "champion": self.champion,
            "challenger": self.challenger,
            "run_id": self.run_id,
            "metrics": self.metrics,
            "state": self.decision["after"],
            "reason": self.decision["reason"],
            "comparison": self.decision["comparison"],
            "promotion": self.promotion.as_dict(),
        }


def champion_recipe(params: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The model type and model parameters a run was trained with, from its logged params."""
    model_type = params.get("model_type")
    if not model_type:
        raise FlowscopeError("the champion's run logged no model_type parameter to retrain with")
    prefix = "model."
    return model_type, {k[len(prefix) :]: v for k, v in params.items() if k.startswith(prefix)}


def holdout_split(
    frame: pd.DataFrame, target: str, problem: str, test_size: float, seed: int
) -> pd.DataFrame:
    """The held-out rows (features and target) of the split the training pipeline makes for
    these arguments; the caller checks them against the run's logged predictions."""
    from sklearn.model_selection import train_test_split

    labelled = frame.dropna(subset=[target])
    features, y = labelled.drop(columns=[target]), labelled[target]
    stratify = y if problem in ("binary", "multiclass") else None
    _, X_test, _, y_test = train_test_split(
        features, y, test_size=test_size, random_state=seed, stratify=stratify
    )
    return X_test.assign(**{target: y_test}).reset_index(drop=True)


def retrain(
    settings: Settings,
    model: str,
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    policy: Policy | None = None,
    dataset_name: str | None = None,
    seed: int = 0,
    wait: float = 0.0,
    explain: bool = True,
) -> RetrainResult:
    """Train a challenger to ``model``'s production version on ``frame`` and apply
    ``policy`` (default: the policy last applied to the model) to it: both are evaluated on
    the challenger's hold-out, and it is promoted only if it passes the gates and beats the
    champion as the policy demands; ``explain`` logs SHAP values with the challenger, as
    training does by default. The result says what happened and why.

    >>> retrain(settings, "heart-disease", read_table("new.csv")).decision["reason"]
    ... # doctest: +SKIP
    """
    from flowscope.analysis.significance import load_predictions
    from flowscope.modeling.data import validate_training_data
    from flowscope.modeling.train import train
    from flowscope.registry.champion import HOLDOUT_ARTIFACT
    from flowscope.registry.history import last_policy
    from flowscope.registry.promotion import check_policy, promote
    from flowscope.registry.state import read_model_state

    state = read_model_state(settings, model)
    champion = state.holder("production")
    if champion is None:
        raise FlowscopeError(
            f"model {model!r} has no @production version to retrain; promote one first"
        )
    policy = policy or last_policy(settings, model)
    if policy is None:
        raise FlowscopeError(
            f"no policy: none was ever applied to {model!r}, so name one with --policy"
        )
    check_policy(policy, state)
    model_type, params = champion_recipe(champion.params)
    target = target or champion.params.get("target")
    if not target:
        raise FlowscopeError("the champion's run names no target; pass --target")
    problem = validate_training_data(frame, target)
    if champion.params.get("problem") not in (None, problem):
        raise FlowscopeError(
            f"the new data makes {target!r} a {problem} target; champion v{champion.number} "
            f"was trained on a {champion.params['problem']} one"
        )
    test_size = float(champion.params.get("test_size", 0.2))
    result = train(
        frame,
        target,
        model_type,
        params,
        task=_task_of(settings, champion.run_id) or model,
        test_size=test_size,
        seed=seed,
        run_name=f"retrain of {model} v{champion.number}",
        register=model,
        dataset_name=dataset_name,
        tags={RETRAINED_FROM_TAG: f"{model}/{champion.number}"},
        settings=settings,
        explain=explain,
    )
    if result.run_id is None or not result.delivered or result.registered_version is None:
        raise FlowscopeError(
            "the challenger's run has not reached the store yet (`flowscope sync` delivers "
            "it); run `flowscope promote` once it has"
        )
    holdout = holdout_split(frame, target, result.problem, test_size, seed)
    kept = load_predictions(settings, result.run_id)
    if kept is None or not np.array_equal(
        kept.sort_values("row")["y_true"].to_numpy(), holdout[target].to_numpy()
    ):
        raise FlowscopeError(
            f"could not rebuild run {result.run_id}'s held-out rows to compare the champion "
            "on; its version stays a candidate"
        )
    _keep_holdout(settings, result.run_id, holdout, HOLDOUT_ARTIFACT)
    promotion = promote(
        settings,
        model,
        policy,
        version=int(result.registered_version),
        command="retrain",
        wait=wait,
    )
    return RetrainResult(
        model=model,
        champion=champion.number,
        challenger=int(result.registered_version),
        run_id=result.run_id,
        metrics=result.metrics,
        promotion=promotion,
    )


def _task_of(settings: Settings, run_id: str | None) -> str | None:
    from flowscope.tracking.run import TASK_TAG

    if not run_id:
        return None
    return client_for(settings).get_run(run_id).data.tags.get(TASK_TAG)


def _keep_holdout(settings: Settings, run_id: str, holdout: pd.DataFrame, artifact: str) -> None:
    folder, _, name = artifact.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        holdout.to_parquet(path, index=False)
        client_for(settings).log_artifact(run_id, str(path), folder)
