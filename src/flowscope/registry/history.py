"""The audit trail: every promotion attempt is an evaluation run in ``<model>-lifecycle``.

Each run carries, as tags, the model, the outcome (``applied``, ``no-op``, ``busy``), who
ran it with which command and policy digest, the aliases before and after, and why each
moved alias landed where it did; the full decision (every version's gates, evidence and
comparison) is ``lifecycle/decision.json`` and the policy text ``lifecycle/policy.yaml``.
:func:`decision_history` reads the runs back and rebuilds which version held which alias
when, noticing aliases that were moved outside flowscope in between.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flowscope.artifacts import read_text_artifact
from flowscope.errors import FlowscopeError
from flowscope.mlflow_client import client_for
from flowscope.registry.tags import (
    ACTOR_TAG,
    AFTER_TAG,
    ALIASES,
    AT_TAG,
    BEFORE_TAG,
    COMMAND_TAG,
    MODEL_TAG,
    OUTCOME_TAG,
    POLICY_TAG,
    SUMMARY_TAG,
    WHY_TAG,
)

if TYPE_CHECKING:
    from mlflow.entities import Run as MlflowRun

    from flowscope.config import Settings
    from flowscope.registry.plan import Plan
    from flowscope.registry.policy import Policy

__all__ = ["alias_timeline", "decision_history", "last_policy", "record_decision"]

DECISION_ARTIFACT = "lifecycle/decision.json"
POLICY_ARTIFACT = "lifecycle/policy.yaml"
_REASON_CHARS = 600  # per alias: run tags hold at most 8000 characters


def lifecycle_task(model: str) -> str:
    """The task (experiment) holding a model's decision records."""
    return f"{model}-lifecycle"


def record_decision(
    settings: Settings,
    model: str,
    policy: Policy,
    *,
    outcome: str,
    who: str,
    at: str,
    command: str,
    plan: Plan | None = None,
    note: str | None = None,
    apply: Callable[[str | None], None] | None = None,
) -> str | None:
    """Record one promotion attempt as an evaluation run and return its id; ``apply`` runs
    inside it with the run id (so version tags can name it), and a failure there marks the
    run FAILED with the error before it propagates."""
    from flowscope.tracking.run import start_run

    summary = note or (plan.summary() if plan else outcome)
    tags = {
        MODEL_TAG: model,
        OUTCOME_TAG: outcome,
        COMMAND_TAG: command,
        ACTOR_TAG: who,
        AT_TAG: at,
        POLICY_TAG: policy.digest,
        SUMMARY_TAG: summary,
    }
    if plan is not None:
        reasons = {a: r[:_REASON_CHARS] for a, r in plan.alias_reasons().items()}
        tags.update(
            {
                BEFORE_TAG: json.dumps(plan.aliases_before, sort_keys=True),
                AFTER_TAG: json.dumps(plan.aliases_after, sort_keys=True),
                WHY_TAG: json.dumps(reasons, sort_keys=True),
            }
        )
    record = {
        "model": model,
        "outcome": outcome,
        "command": command,
        "by": who,
        "at": at,
        "policy_digest": policy.digest,
        "policy_source": policy.source,
        "note": note,
        "plan": plan.as_dict() if plan else None,
    }
    with start_run(
        lifecycle_task(model),
        run_name=f"{command} {model}: {outcome}",
        kind="evaluation",
        tags=tags,
        description=summary,
        settings=settings,
    ) as run:
        if apply is not None:
            apply(run.run_id)
        run.log_dict({**record, "run_id": run.run_id}, DECISION_ARTIFACT)
        run.log_text(policy.text, POLICY_ARTIFACT)
    return run.run_id


def _runs(settings: Settings, model: str) -> list[MlflowRun]:
    client = client_for(settings)
    experiment = client.get_experiment_by_name(settings.experiment_name(lifecycle_task(model)))
    if experiment is None:
        return []
    runs: list[MlflowRun] = []
    token = None
    quoted = model.replace("'", "\\'")
    while True:
        page = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{MODEL_TAG}` = '{quoted}'",
            order_by=["attributes.start_time ASC"],
            max_results=1000,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _loads(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _artifact_text(settings: Settings, run_id: str, path: str) -> str | None:
    return read_text_artifact(client_for(settings), run_id, path)


def decision_history(settings: Settings, model: str, *, details: bool = False) -> dict[str, Any]:
    """Every recorded promotion attempt on ``model``, newest first, and per alias the
    versions that held it with since/until times (ms) and why: ``{"model", "decisions",
    "aliases"}``. ``details`` adds each decision's full record (one artifact read per run).
    An unknown model without any history is a :class:`NotFoundError`."""
    runs = _runs(settings, model)
    if not runs:
        from flowscope.registry.state import read_model_state

        read_model_state(settings, model)  # raises NotFoundError for an unknown model
    decisions = []
    for run in runs:
        tags = run.data.tags
        entry: dict[str, Any] = {
            "run_id": run.info.run_id,
            "time": run.info.start_time,
            "status": run.info.status,
            "outcome": tags.get(OUTCOME_TAG),
            "command": tags.get(COMMAND_TAG),
            "by": tags.get(ACTOR_TAG),
            "at": tags.get(AT_TAG),
            "policy_digest": tags.get(POLICY_TAG),
            "summary": tags.get(SUMMARY_TAG),
            "aliases_before": _loads(tags.get(BEFORE_TAG)),
            "aliases_after": _loads(tags.get(AFTER_TAG)),
            "alias_reasons": _loads(tags.get(WHY_TAG)) or {},
        }
        if details:
            entry["record"] = _loads(_artifact_text(settings, run.info.run_id, DECISION_ARTIFACT))
        decisions.append(entry)
    return {
        "model": model,
        "decisions": list(reversed(decisions)),
        "aliases": alias_timeline(decisions),
    }


def alias_timeline(decisions: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per alias, the versions that held it, oldest first: ``{"version", "since", "until",
    "run_id", "by", "reason"}`` (``until`` None while it still holds it), from decisions in
    chronological order. A holder that differs from what the previous decision left was
    set outside flowscope; it appears with ``since`` None."""
    timeline: dict[str, list[dict[str, Any]]] = {alias: [] for alias in ALIASES}
    for entry in decisions:
        before, after = entry.get("aliases_before"), entry.get("aliases_after")
        if entry.get("status") != "FINISHED" or before is None or after is None:
            continue  # busy or failed attempts moved nothing we can vouch for
        for alias in ALIASES:
            spans = timeline[alias]
            current = spans[-1] if spans and spans[-1]["until"] is None else None
            held = before.get(alias)
            if (current["version"] if current else None) != held:
                if current is not None:
                    current["until"] = entry["time"]
                if held is not None:
                    spans.append(_span(held, None, None, None, "set outside flowscope"))
            if after.get(alias) != held:
                if spans and spans[-1]["until"] is None:
                    spans[-1]["until"] = entry["time"]
                if after.get(alias) is not None:
                    reason = entry["alias_reasons"].get(alias, "")
                    spans.append(
                        _span(after[alias], entry["time"], entry["run_id"], entry["by"], reason)
                    )
    return timeline


def _span(
    version: int, since: int | None, run_id: str | None, by: str | None, reason: str
) -> dict[str, Any]:
    return {
        "version": version,
        "since": since,
        "until": None,
        "run_id": run_id,
        "by": by,
        "reason": reason,
    }


def last_policy(settings: Settings, model: str) -> Policy | None:
    """The policy most recently applied to ``model`` (as recorded with its decision), or
    None when no decision was recorded."""
    from flowscope.registry.policy import parse_policy

    for run in reversed(_runs(settings, model)):
        if run.data.tags.get(OUTCOME_TAG) in ("applied", "no-op"):
            text = _artifact_text(settings, run.info.run_id, POLICY_ARTIFACT)
            if text is None:
                raise FlowscopeError(
                    f"run {run.info.run_id} recorded a decision on {model!r} but its "
                    f"{POLICY_ARTIFACT} cannot be read; pass --policy"
                )
            return parse_policy(text, source=f"the policy recorded by run {run.info.run_id}")
    return None
