"""Promotion policy as code: a YAML file of gates per stage, evidence, a rule to beat the
current holder, and archive rules, validated with pydantic.

A policy reads like this (``examples/policies/heart-disease.yaml`` is a full one)::

    model: heart-disease            # optional guard: refuse to run on another model
    stages:
      staging:
        gates: ["accuracy >= 0.85", "accuracy <= 0.90"]
        require: [signature, evaluation]
      production:
        gates: ["accuracy >= 0.91", "precision_1 >= 0.93"]
        require: [signature, evaluation]
        beat: {metric: accuracy, min_difference: 0.0, alpha: 0.05}
    archive:
      floor: ["accuracy >= 0.85"]   # a version failing any of these is archived
      replaced: [production]        # a holder pushed out of these stages is archived

Decisions worth knowing:

- A gate is ``METRIC OP NUMBER`` (or ``{metric, op, value}``) with OP one of ``>=``, ``>``,
  ``<=``, ``<``, ``==``. Values within 1e-9 (relative) of the threshold count as equal, so
  float noise in a logged metric (0.9099999999999999) does not fail ``>= 0.91``; equal passes
  ``>=`` and fails ``>``.
- The digest is the sha256 of the file's bytes: the decision record names exactly the text
  that was applied, and the text itself is kept with the record.
- Every error names the key path (``stages.production.gates[1]``) and its line in the file.
"""

from __future__ import annotations

import hashlib
import math
import operator
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.registry.tags import ALIASES

__all__ = [
    "EVIDENCE",
    "OPERATORS",
    "STAGES",
    "ArchiveRule",
    "BeatRule",
    "Gate",
    "Policy",
    "PolicyError",
    "StageRule",
    "load_policy",
    "parse_policy",
]

STAGES = ALIASES  # a policy gates the states the lifecycle aliases hold
EVIDENCE = ("signature", "evaluation", "explanations")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
_GATE_TEXT = re.compile(r"^\s*(?P<metric>[\w.\-]+)\s*(?P<op>>=|<=|==|>|<)\s*(?P<value>\S+)\s*$")
_RELATIVE_TOLERANCE = 1e-9


class PolicyError(FlowscopeError):
    """A policy file that cannot be read or is invalid; the message names the key and line."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Gate(_Strict):
    """One condition on a version's evaluation metric: ``accuracy >= 0.91``."""

    metric: str = Field(min_length=1)
    op: Literal[">=", ">", "<=", "<", "=="]
    value: float

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        match = _GATE_TEXT.match(data)
        if match is None:
            raise ValueError(
                f"{data!r} is not 'METRIC OP NUMBER' with OP one of {', '.join(OPERATORS)}"
            )
        try:
            value = float(match["value"])
        except ValueError:
            raise ValueError(f"{match['value']!r} in {data!r} is not a number") from None
        return {"metric": match["metric"], "op": match["op"], "value": value}

    @model_validator(mode="after")
    def _finite(self) -> Gate:
        if not math.isfinite(self.value):
            raise ValueError(f"the threshold of {self.metric} must be a finite number")
        return self

    def passes(self, value: float | None) -> bool:
        """True when ``value`` meets the gate; a missing or NaN value never does."""
        if value is None or not math.isfinite(value):
            return False
        if math.isclose(value, self.value, rel_tol=_RELATIVE_TOLERANCE, abs_tol=1e-12):
            return self.op in (">=", "<=", "==")
        return OPERATORS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


class BeatRule(_Strict):
    """How a challenger must beat the current holder on the same held-out rows: better on
    ``metric`` by at least ``min_difference``, significantly at ``alpha`` (paired bootstrap
    interval, and McNemar's exact test for accuracy)."""

    metric: str = "accuracy"
    min_difference: float = Field(0.0, ge=0.0)
    alpha: float = Field(0.05, gt=0.0, lt=1.0)

    @field_validator("metric")
    @classmethod
    def _testable(cls, metric: str) -> str:
        from flowscope.analysis.significance import CLASSIFICATION_METRICS, REGRESSION_METRICS

        known = CLASSIFICATION_METRICS + REGRESSION_METRICS
        if metric not in known:
            raise ValueError(
                f"no paired significance test for {metric!r}; use one of {', '.join(known)}"
            )
        return metric


class StageRule(_Strict):
    """What a version needs to hold a stage's alias."""

    gates: list[Gate] = Field(default_factory=list)
    require: list[Literal["signature", "evaluation", "explanations"]] = Field(default_factory=list)
    beat: BeatRule | None = None

    @property
    def rank_metric(self) -> str | None:
        """The metric that orders eligible versions: the beat rule's, else the first gate's."""
        if self.beat is not None:
            return self.beat.metric
        return self.gates[0].metric if self.gates else None


class Stages(_Strict):
    staging: StageRule | None = None
    production: StageRule | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Stages:
        if self.staging is None and self.production is None:
            raise ValueError("define at least one stage: staging or production")
        return self


class ArchiveRule(_Strict):
    """When versions are archived: failing any ``floor`` gate, or pushed out of a stage
    listed in ``replaced``."""

    floor: list[Gate] = Field(default_factory=list)
    replaced: list[Literal["staging", "production"]] = Field(default_factory=list)


class Policy(_Strict):
    """A validated promotion policy; ``digest``, ``text`` and ``source`` describe the file."""

    model: str | None = None
    stages: Stages
    archive: ArchiveRule = Field(default_factory=ArchiveRule)
    _text: str = PrivateAttr("")
    _source: str = PrivateAttr("<policy>")

    @property
    def text(self) -> str:
        return self._text

    @property
    def source(self) -> str:
        return self._source

    @property
    def digest(self) -> str:
        """sha256 of the policy's text as read, in hex."""
        return hashlib.sha256(self._text.encode()).hexdigest()

    def stage(self, name: str) -> StageRule | None:
        rule: StageRule | None = getattr(self.stages, name)
        return rule

    def metrics(self) -> dict[str, str]:
        """Every metric the policy names, with the key path that names it first."""
        named: dict[str, str] = {}
        for stage in STAGES:
            rule = self.stage(stage)
            if rule is None:
                continue
            for index, gate in enumerate(rule.gates):
                named.setdefault(gate.metric, f"stages.{stage}.gates[{index}]")
            if rule.beat is not None:
                named.setdefault(rule.beat.metric, f"stages.{stage}.beat.metric")
        for index, gate in enumerate(self.archive.floor):
            named.setdefault(gate.metric, f"archive.floor[{index}]")
        return named


def load_policy(path: str | Path) -> Policy:
    """Read and validate the policy file at ``path``; a missing file is a
    :class:`NotFoundError`, anything wrong inside a :class:`PolicyError` naming the key
    and line."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"no policy file {str(file)!r}") from None
    except OSError as exc:
        raise PolicyError(f"cannot read policy {str(file)!r}: {exc.strerror}") from None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        raise PolicyError(f"policy {str(file)!r} is not UTF-8 text") from None
    return parse_policy(text, source=str(file))


def parse_policy(text: str, *, source: str = "<policy>") -> Policy:
    """Validate a policy given as YAML text (a file's content, or a request body)."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"policy {source}: not valid YAML{where}: {problem}") from None
    if data is None:
        raise PolicyError(f"policy {source} is empty")
    if not isinstance(data, dict):
        raise PolicyError(
            f"policy {source} must be a mapping with 'stages' (and 'archive'), "
            f"not a {type(data).__name__}"
        )
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(f"policy {source}: {_describe(exc, text)}") from None
    policy._text = text
    policy._source = source
    return policy


def _describe(exc: ValidationError, text: str) -> str:
    problems = []
    for error in exc.errors():
        # pydantic adds the validator's name to the location of a "before" validator
        loc = [part for part in error["loc"] if not str(part).startswith("function-")]
        path = _key_path(loc)
        line = _line_of(text, loc)
        where = f"{path} (line {line})" if line else path
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        elif error["type"] == "literal_error":
            message = f"{error.get('input')!r} is not allowed; {message.lower()}"
        problems.append(f"{where}: {message}")
    return "; ".join(problems)


def _key_path(loc: list[Any]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "policy"


def _line_of(text: str, loc: list[Any]) -> int | None:
    """The line of the YAML key or item at ``loc``, or of the deepest one found on the way
    (a missing key has no line of its own)."""
    import yaml

    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None:
                break
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line
