"""``promote``: evaluate a model's versions against a policy, move the ``staging`` and
``production`` aliases, tag every version with its lifecycle state, and record why.

The decisions come from :func:`~flowscope.registry.plan.plan_promotion` (the rules are
there); this module checks the input, takes the registry lock, applies the plan and records
the attempt. Running it again with nothing changed plans no change and records a no-op, so
every attempt (and who made it, with which policy) stays in the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.mlflow_client import client_for
from flowscope.public_reason import public_reason
from flowscope.registry.plan import Comparator, Plan, VersionDecision, plan_promotion
from flowscope.registry.policy import Policy, PolicyError
from flowscope.registry.state import ModelState, VersionState
from flowscope.registry.tags import ALIASES, version_tags

if TYPE_CHECKING:
    from flowscope.config import Settings
    from flowscope.registry.policy import BeatRule

__all__ = [
    "Comparator",
    "Plan",
    "PromotionResult",
    "VersionDecision",
    "check_policy",
    "plan_promotion",
    "preview_promotion",
    "promote",
]


def check_policy(policy: Policy, state: ModelState, only: int | None = None) -> None:
    """Refuse a policy for another model, or one naming a metric no version has, and an
    unknown ``only`` version: before anything is changed."""
    if policy.model is not None and policy.model != state.name:
        raise PolicyError(
            f"policy {policy.source} is for model {policy.model!r}, not {state.name!r}"
        )
    if only is not None and only not in state.versions:
        known = ", ".join(str(n) for n in sorted(state.versions)) or "none"
        raise NotFoundError(f"model {state.name!r} has no version {only} (versions: {known})")
    if not state.versions:
        raise FlowscopeError(f"model {state.name!r} has no versions to promote")
    have = set().union(*(v.metrics for v in state.versions.values()))
    for metric, where in policy.metrics().items():
        if metric not in have:
            shown = ", ".join(sorted(have)[:12]) + (" ..." if len(have) > 12 else "")
            raise PolicyError(
                f"policy {policy.source}: {where} names metric {metric!r}, which no version of "
                f"{state.name!r} has (they have: {shown or 'no metrics'})"
            )


@dataclass
class PromotionResult:
    """A promotion: its plan, what happened (``dry-run``, ``applied``, ``no-op``), the run
    recording it, who and when."""

    plan: Plan
    outcome: str
    run_id: str | None
    actor: str
    at: str
    policy_source: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "run_id": self.run_id,
            "actor": self.actor,
            "at": self.at,
            "policy_source": self.policy_source,
            **self.plan.as_dict(),
        }


def _comparator(settings: Settings) -> Comparator:
    from flowscope.registry.champion import compare_champion

    cache: dict[tuple[int, int, str], dict[str, Any]] = {}

    def compare(champion: VersionState, challenger: VersionState, rule: BeatRule) -> dict[str, Any]:
        key = (champion.number, challenger.number, rule.model_dump_json())
        if key not in cache:
            cache[key] = compare_champion(settings, champion, challenger, rule)
        return cache[key]

    return compare


def promote(
    settings: Settings,
    model: str,
    policy: Policy,
    *,
    version: int | None = None,
    dry_run: bool = False,
    wait: float = 0.0,
    command: str = "promote",
    who: str | None = None,
) -> PromotionResult:
    """Apply ``policy`` to ``model``'s versions (or to ``version`` only): move the aliases,
    tag every version with its state and the decision, and record the attempt as an
    evaluation run in ``<model>-lifecycle``. ``dry_run`` plans and compares but changes and
    records nothing. Two promoters of one model are serialised by a registry lock: the one
    that does not get it within ``wait`` seconds records a ``busy`` attempt and raises
    :class:`~flowscope.registry.lock.LockBusyError`.

    >>> promote(settings, "heart-disease", load_policy("policy.yaml")).plan.summary()
    ... # doctest: +SKIP
    '@production: v1 -> v2; archived v1'
    """
    from flowscope.registry.history import record_decision
    from flowscope.registry.lock import LockBusyError, RegistryLock, actor
    from flowscope.registry.state import read_model_state

    evidence: dict[str, dict[str, Any]] = {}
    state = read_model_state(settings, model, evidence_cache=evidence)
    check_policy(policy, state, version)
    who = who or actor()
    compare = _comparator(settings)
    if dry_run:
        plan = plan_promotion(state, policy, compare=compare, only=version)
        return PromotionResult(plan, "dry-run", None, who, _now(), policy.source)
    lock = RegistryLock(client_for(settings), model, holder=who, wait=wait)
    try:
        lock.acquire()
    except LockBusyError as exc:
        at = _now()
        note = exc.message
        record_decision(
            settings, model, policy, outcome="busy", who=who, at=at, command=command, note=note
        )
        raise
    try:
        # Re-read under the lock: the promoter before us may have moved the aliases.
        state = read_model_state(settings, model, evidence_cache=evidence)
        plan = plan_promotion(state, policy, compare=compare, only=version)
        at = _now()
        outcome = "applied" if plan.changed else "no-op"

        def apply(run_id: str | None) -> None:
            if plan.changed:
                _apply(settings, plan, policy, who=who, at=at, command=command, run_id=run_id)

        run_id = record_decision(
            settings,
            model,
            policy,
            outcome=outcome,
            who=who,
            at=at,
            command=command,
            plan=plan,
            apply=apply,
        )
    finally:
        lock.release()
    return PromotionResult(plan, outcome, run_id, who, at, policy.source)


def _apply(
    settings: Settings,
    plan: Plan,
    policy: Policy,
    *,
    who: str,
    at: str,
    command: str,
    run_id: str | None,
) -> None:
    """Move the aliases, then tag each changed version with its state and decision."""
    from mlflow.exceptions import MlflowException

    client = client_for(settings)
    try:
        for alias in ALIASES:
            before, after = plan.aliases_before.get(alias), plan.aliases_after.get(alias)
            if after is None and before is not None:
                client.delete_registered_model_alias(plan.model, alias)
            elif after != before:
                client.set_registered_model_alias(plan.model, alias, str(after))
        for decision in plan.decisions:
            if not decision.changed:
                continue
            record = {
                "version": decision.version,
                "state": decision.after,
                "previous": decision.before,
                "aliases": decision.aliases_after,
                "reasons": decision.reasons,
                "gates": decision.gates,
                "evidence": decision.evidence,
                "comparison": decision.comparison,
                "policy_digest": policy.digest,
                "policy_source": policy.source,
                "by": who,
                "at": at,
                "command": command,
                "run_id": run_id,
            }
            for key, value in version_tags(decision.after, decision.reason, record).items():
                client.set_model_version_tag(plan.model, str(decision.version), key, value)
    except MlflowException as exc:
        # The aliases are the truth and the plan is recomputed from them, so running the
        # promotion again finishes what was interrupted.
        raise FlowscopeError(
            f"the promotion of {plan.model!r} stopped part-way ({public_reason(exc)}); run it "
            "again to finish it",
            detail=exc.message,
        ) from None


def apply_promotion(settings: Settings, model: str, policy_text: str) -> dict[str, Any]:
    """Apply a policy given as YAML text to ``model`` (the dashboard's "Apply"), recorded
    like ``flowscope promote``; what it did, as a dict."""
    from flowscope.registry.policy import parse_policy

    policy = parse_policy(policy_text, source="(dashboard)")
    return promote(settings, model, policy).as_dict()


def preview_promotion(settings: Settings, model: str, policy_text: str) -> dict[str, Any]:
    """What a policy given as YAML text would do to ``model`` now (a dry run), as a dict:
    the dashboard's preview."""
    from flowscope.registry.policy import parse_policy

    policy = parse_policy(policy_text, source="(preview)")
    return promote(settings, model, policy, dry_run=True).as_dict()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
