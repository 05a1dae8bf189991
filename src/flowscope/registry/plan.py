"""The plan of a promotion: what a policy does to a model's versions, decided without
changing anything (the champion comparison is injected, so plans are testable without a
store).

How a plan is made:

1. Every version still in play (not archived, unless named with ``only``) is checked
   against the archive floor, and each stage's gates and required evidence.
2. A version failing the floor is archived; an alias it held is removed.
3. For production, then staging: the eligible versions (gates and evidence pass) are ranked
   by the stage's beat metric (else its first gate's), ties going to the newer version. The
   best one takes the alias when nobody holds it; against a holder it must pass the beat
   rule (better, by the minimum difference, significantly, on the same held-out rows), or
   without a beat rule simply score better. A holder pushed out is archived when the
   policy's ``archive.replaced`` lists the stage, else it becomes a candidate again. A
   holder failing a tightened policy keeps its alias, and the plan says so.
4. Every version gets its state: the alias it holds, archived, or candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from flowscope.registry.policy import Gate, Policy, StageRule
from flowscope.registry.state import ModelState, VersionState
from flowscope.registry.tags import ALIASES

if TYPE_CHECKING:
    from flowscope.registry.policy import BeatRule

__all__ = ["Comparator", "Plan", "VersionDecision", "plan_promotion"]

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
        self.regate(holder_number, stage, rule)
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
            if _rank_key(challenger, metric)[0] <= _rank_key(holder, metric)[0]:  # value only
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

    def regate(self, number: int | None, stage: str, rule: StageRule) -> None:
        # A holder that fails a tightened policy keeps its alias (demoting it would leave the
        # stage empty), but the plan says so, and shows the values.
        if number is None or number not in self.gates:
            return
        results = _gate_results(rule.gates, self.state.versions[number].metrics)
        self.gates[number][stage] = results
        if _failures(results):
            self.reasons[number].append(
                f"keeps @{stage} though it now fails its gates: " + ", ".join(_failures(results))
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
