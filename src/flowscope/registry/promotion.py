"""``promote``: evaluate a model's versions against a policy, move the ``staging`` and
``production`` aliases, tag every version with its lifecycle state, and record why.

How a plan is made (:func:`plan_promotion`, pure but for the champion comparison):

1. Every version still in play (not archived, unless named with ``version=``) is checked
   against the archive floor, and each stage's gates and required evidence.
2. A version failing the floor is archived; an alias it held is removed.
3. For production, then staging: the eligible versions (gates and evidence pass) are ranked
   by the stage's beat metric (else its first gate's), ties going to the newer version. The
   best one takes the alias when nobody holds it; against a holder it must pass the beat
   rule (better, by the minimum difference, significantly, on the same held-out rows), or
   without a beat rule simply score better. A holder pushed out is archived when the
   policy's ``archive.replaced`` lists the stage, else it becomes a candidate again.
4. Every version gets its state: the alias it holds, archived, or candidate.

Running it again with nothing changed plans no change; :func:`promote` then records a
no-op, so every attempt (and who made it, with which policy) stays in the history.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.registry.lifecycle import ALIASES, ModelState, VersionState
from flowscope.registry.policy import Gate, Policy, PolicyError, StageRule

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

# (champion, challenger, rule) -> the dict :func:`flowscope.registry.champion.compare_champion`
# returns; injected so a plan can be made, and tested, without a store.
Comparator = Callable[[VersionState, VersionState, "BeatRule"], dict[str, Any]]


@dataclass
class VersionDecision:
    """What the plan does with one version, and why."""

    version: int
    before: str
    after: str
    tagged: str | None
    aliases_before: list[str]
    aliases_after: list[str]
    reasons: list[str] = field(default_factory=list)
    gates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    evidence: dict[str, bool] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    touched: bool = True

    @property
    def changed(self) -> bool:
        moved = self.aliases_before != self.aliases_after
        return moved or (self.touched and self.tagged != self.after)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed, "reason": self.reason}


@dataclass
class Plan:
    """A promotion's decisions before they are applied."""

    model: str
    policy_digest: str
    aliases_before: dict[str, int]
    aliases_after: dict[str, int]
    decisions: list[VersionDecision]

    @property
    def changed(self) -> bool:
        return any(decision.changed for decision in self.decisions)

    def alias_reasons(self) -> dict[str, str]:
        """Why each alias that moves lands where it does (or is removed)."""
        reasons = {}
        by_version = {decision.version: decision for decision in self.decisions}
        for alias in ALIASES:
            before, after = self.aliases_before.get(alias), self.aliases_after.get(alias)
            if before == after:
                continue
            source = by_version.get(after if after is not None else before or -1)
            reasons[alias] = source.reason if source else ""
        return reasons

    def summary(self) -> str:
        moves = []
        for alias in ALIASES:
            before, after = self.aliases_before.get(alias), self.aliases_after.get(alias)
            if before != after:
                moves.append(f"@{alias}: {_v(before)} -> {_v(after)}")
        archived = [d.version for d in self.decisions if d.changed and d.after == "archived"]
        if archived:
            moves.append("archived " + ", ".join(f"v{n}" for n in archived))
        retagged = [
            d.version
            for d in self.decisions
            if d.changed and d.after != "archived" and d.aliases_before == d.aliases_after
        ]
        if retagged:
            moves.append("tagged " + ", ".join(f"v{n}" for n in retagged))
        return "; ".join(moves) if moves else "no change: the registry already matches the policy"

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "policy_digest": self.policy_digest,
            "aliases_before": self.aliases_before,
            "aliases_after": self.aliases_after,
            "changed": self.changed,
            "summary": self.summary(),
            "decisions": [decision.as_dict() for decision in self.decisions],
        }


def _v(number: int | None) -> str:
    return f"v{number}" if number is not None else "none"


def _gate_results(gates: list[Gate], metrics: dict[str, float]) -> list[dict[str, Any]]:
    return [
        {
            "gate": str(gate),
            "metric": gate.metric,
            "op": gate.op,
            "threshold": gate.value,
            "value": metrics.get(gate.metric),
            "passed": gate.passes(metrics.get(gate.metric)),
        }
        for gate in gates
    ]


def _failures(results: list[dict[str, Any]]) -> list[str]:
    return [
        f"{r['metric']} = {r['value']:.4g} fails {r['gate']}"
        if r["value"] is not None
        else f"{r['metric']} is missing (needed by {r['gate']})"
        for r in results
        if not r["passed"]
    ]


def _direction(metric: str) -> float:
    from flowscope.analysis.best import default_direction

    return 1.0 if default_direction(metric) == "max" else -1.0


def _rank_key(version: VersionState, metric: str | None) -> tuple[float, int]:
    if metric is None:
        return (0.0, version.number)
    value = version.metrics.get(metric)
    if value is None or not math.isfinite(value):
        return (-math.inf, version.number)
    return (value * _direction(metric), version.number)


class _Planner:
    def __init__(
        self, state: ModelState, policy: Policy, only: int | None, compare: Comparator
    ) -> None:
        self.state, self.policy, self.compare = state, policy, compare
        versions = state.versions.values()
        self.considered = [
            v
            for v in versions
            if (only is None and v.state != "archived" and v.status == "READY") or v.number == only
        ]
        self.aliases = dict(state.aliases)
        self.archived: set[int] = set()
        self.released: set[int] = set()
        self.reasons: dict[int, list[str]] = {v.number: [] for v in versions}
        self.gates: dict[int, dict[str, list[dict[str, Any]]]] = {}
        self.comparisons: dict[int, dict[str, Any]] = {}

    def eligible(self, version: VersionState, stage: str, rule: StageRule) -> bool:
        results = _gate_results(rule.gates, version.metrics)
        self.gates[version.number][stage] = results
        missing = [item for item in rule.require if not version.evidence.get(item)]
        failures = _failures(results) + [f"no {item} evidence" for item in missing]
        if failures:
            self.reasons[version.number].append(f"{stage}: " + ", ".join(failures))
        return not failures

    def run(self) -> Plan:
        for version in self.considered:
            self.gates[version.number] = {}
            floor = _gate_results(self.policy.archive.floor, version.metrics)
            self.gates[version.number]["floor"] = floor
            if any(not result["passed"] for result in floor):
                self.archived.add(version.number)
                self.reasons[version.number].append(
                    "below the archive floor: " + ", ".join(_failures(floor))
                )
        for alias, number in list(self.aliases.items()):
            if number in self.archived:
                del self.aliases[alias]
                self.reasons[number].append(f"loses @{alias}")
        for stage in ("production", "staging"):
            rule = self.policy.stage(stage)
            if rule is not None:
                self.fill(stage, rule)
        return self.plan()

    def fill(self, stage: str, rule: StageRule) -> None:
        if stage == "staging" and self.aliases.get("staging") == self.aliases.get("production"):
            moved = self.aliases.pop("staging", None)
            if moved is not None:
                self.reasons[moved].append("leaves @staging for @production")
        holder_number = self.aliases.get(stage)
        candidates = [
            v
            for v in self.considered
            if v.number not in self.archived
            and v.number != holder_number
            and v.number != self.aliases.get("production")
            and self.eligible(v, stage, rule)
        ]
        if not candidates:
            return
        metric = rule.rank_metric
        candidates.sort(key=lambda v: _rank_key(v, metric), reverse=True)
        challenger, others = candidates[0], candidates[1:]
        for other in others:
            self.reasons[other.number].append(
                f"passes the {stage} gates, but v{challenger.number} ranks higher"
                + (f" on {metric}" if metric else "")
            )
        if holder_number is None:
            self.take(stage, challenger, f"passes the {stage} gates; @{stage} was free")
            return
        holder = self.state.versions[holder_number]
        if rule.beat is not None:
            comparison = self.compare(holder, challenger, rule.beat)
            self.comparisons[challenger.number] = comparison
            if not comparison["passed"]:
                self.reasons[challenger.number].append(
                    f"passes the {stage} gates but stays out: {comparison['reason']}"
                )
                return
            self.take(stage, challenger, f"passes the {stage} gates and {comparison['reason']}")
        else:
            if _rank_key(challenger, metric) <= _rank_key(holder, metric):
                self.reasons[challenger.number].append(
                    f"passes the {stage} gates but does not score better than v{holder_number}"
                )
                return
            reason = f"passes the {stage} gates and scores above v{holder_number}"
            self.take(stage, challenger, reason)
        if stage in self.policy.archive.replaced:
            self.archived.add(holder_number)
            self.reasons[holder_number].append(f"replaced at @{stage} by v{challenger.number}")
        else:
            self.reasons[holder_number].append(
                f"replaced at @{stage} by v{challenger.number}; back to candidate"
            )

    def take(self, stage: str, version: VersionState, reason: str) -> None:
        self.aliases[stage] = version.number
        self.reasons[version.number].append(reason)

    def plan(self) -> Plan:
        considered = {v.number for v in self.considered}
        decisions = []
        for number, version in sorted(self.state.versions.items()):
            after_aliases = sorted(a for a, held in self.aliases.items() if held == number)
            if "production" in after_aliases:
                after = "production"
            elif "staging" in after_aliases:
                after = "staging"
            elif number in self.archived or (
                version.state == "archived" and number not in considered
            ):
                after = "archived"
            else:
                after = "candidate"
            decision = VersionDecision(
                version=number,
                before=version.state,
                after=after,
                tagged=version.lifecycle,
                aliases_before=list(version.aliases),
                aliases_after=after_aliases,
                reasons=self.reasons[number],
                gates=self.gates.get(number, {}),
                evidence=dict(version.evidence),
                comparison=self.comparisons.get(number),
            )
            if number not in considered and number not in self.archived:
                # with ``only``, versions out of play keep their tags unless an alias moved
                decision.touched = decision.aliases_before != decision.aliases_after
            if not decision.reasons:
                if number in considered:
                    decision.reasons.append(f"stays {after}")
                elif version.state == "archived":
                    decision.reasons.append("archived earlier; not reconsidered")
                else:
                    decision.reasons.append("not considered in this run")
            decisions.append(decision)
        return Plan(
            model=self.state.name,
            policy_digest=self.policy.digest,
            aliases_before=dict(self.state.aliases),
            aliases_after=dict(self.aliases),
            decisions=decisions,
        )


def plan_promotion(
    state: ModelState, policy: Policy, *, compare: Comparator, only: int | None = None
) -> Plan:
    """Decide, without changing anything, what ``policy`` does to ``state``'s versions (only
    to version ``only`` and the holder it could replace, when given). See the module
    docstring for the rules."""
    return _Planner(state, policy, only, compare).run()


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
    :class:`~flowscope.registry.lifecycle.LockBusyError`.

    >>> promote(settings, "heart-disease", load_policy("policy.yaml")).plan.summary()
    ... # doctest: +SKIP
    '@production: v1 -> v2; archived v1'
    """
    from flowscope.analysis.runs import client_for
    from flowscope.registry.history import record_decision
    from flowscope.registry.lifecycle import (
        LockBusyError,
        RegistryLock,
        actor,
        read_model_state,
    )

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

    from flowscope.analysis.runs import client_for
    from flowscope.registry.lifecycle import version_tags

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
            f"the promotion of {plan.model!r} stopped part-way ({exc.message}); run it again "
            "to finish it"
        ) from None


def preview_promotion(settings: Settings, model: str, policy_text: str) -> dict[str, Any]:
    """What a policy given as YAML text would do to ``model`` now (a dry run), as a dict:
    the dashboard's preview."""
    from flowscope.registry.policy import parse_policy

    policy = parse_policy(policy_text, source="(preview)")
    return promote(settings, model, policy, dry_run=True).as_dict()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
