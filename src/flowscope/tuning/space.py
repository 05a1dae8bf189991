"""Search spaces: the catalog's defaults or a YAML file, checked, as Optuna distributions.

A space file maps each model parameter to its range::

    max_depth: {type: int, low: 3, high: 15}
    learning_rate: {type: float, low: 0.01, high: 0.3, log: true}
    booster: {type: categorical, choices: [gbtree, dart]}

Everything a user can get wrong is an error naming the parameter and the file: an unknown
parameter of the model type, an unknown type, an empty or inverted range, a log range that
reaches zero.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

SearchSpace = dict[str, "BaseDistribution"]


def catalog_space(model_type: str) -> SearchSpace:
    """The catalog's default search space of ``model_type``."""
    from flowscope.modeling.catalog import get_model_type

    entry = get_model_type(model_type)
    space = {}
    for name, spec in entry.search_space.items():
        kind, *rest = spec
        if kind == "categorical":
            space[name] = make_distribution(name, {"type": kind, "choices": rest[0]}, "catalog")
        else:
            log = bool(rest[2]) if len(rest) > 2 else False
            entry_spec = {"type": kind, "low": rest[0], "high": rest[1], "log": log}
            space[name] = make_distribution(name, entry_spec, "catalog")
    return space


def load_space(path: str | Path) -> SearchSpace:
    """The search space in the YAML file at ``path``."""
    import yaml

    source = Path(path)
    try:
        data = yaml.safe_load(source.read_text())
    except OSError as exc:
        raise FlowscopeError(f"cannot read search space {source}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise FlowscopeError(f"search space {source} is not valid YAML: {exc}") from None
    if not isinstance(data, Mapping) or not data:
        raise FlowscopeError(
            f"search space {source} must map parameter names to ranges, e.g. "
            "'max_depth: {type: int, low: 3, high: 15}'"
        )
    return {
        str(name): make_distribution(str(name), spec, str(source)) for name, spec in data.items()
    }


def make_distribution(name: str, spec: Any, where: str) -> BaseDistribution:
    """One parameter's range as an Optuna distribution, checked."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    if not isinstance(spec, Mapping):
        raise FlowscopeError(
            f"parameter {name!r} in {where}: expected a mapping like "
            "{type: int, low: 1, high: 10}, not " + repr(spec)
        )
    kind = spec.get("type")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise FlowscopeError(f"parameter {name!r} in {where}: categorical needs choices")
        return CategoricalDistribution(list(choices))
    if kind not in ("int", "float"):
        raise FlowscopeError(
            f"parameter {name!r} in {where}: type must be int, float or categorical, not {kind!r}"
        )
    low: Any = spec.get("low")
    high: Any = spec.get("high")
    log = bool(spec.get("log", False))
    if not _is_number(low) or not _is_number(high):
        raise FlowscopeError(f"parameter {name!r} in {where}: low and high must be numbers")
    if low > high or (kind == "float" and low == high):
        word = "inverted" if low > high else "empty"
        raise FlowscopeError(f"parameter {name!r} in {where}: the range {low}..{high} is {word}")
    if log and low <= 0:
        raise FlowscopeError(
            f"parameter {name!r} in {where}: a log range must stay above 0, not start at {low}"
        )
    if kind == "int":
        if int(low) != low or int(high) != high:
            raise FlowscopeError(f"parameter {name!r} in {where}: int bounds must be integers")
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def check_params(space: SearchSpace, known: Iterable[str], model_type: str, where: str) -> None:
    """Refuse a parameter the model type does not have, naming the valid ones."""
    valid = set(known)
    for name in space:
        if name not in valid:
            raise FlowscopeError(
                f"unknown parameter {name!r} for {model_type} in {where}; "
                f"valid: {', '.join(sorted(valid))}"
            )


def suggest(trial: optuna.Trial, space: SearchSpace) -> dict[str, Any]:
    """Ask ``trial`` for a value of every parameter of ``space``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params: dict[str, Any] = {}
    for name, distribution in space.items():
        if isinstance(distribution, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, distribution.choices)
        elif isinstance(distribution, IntDistribution):
            params[name] = trial.suggest_int(
                name, distribution.low, distribution.high, log=distribution.log
            )
        elif isinstance(distribution, FloatDistribution):
            params[name] = trial.suggest_float(
                name, distribution.low, distribution.high, log=distribution.log
            )
        else:
            raise FlowscopeError(f"parameter {name!r}: {distribution!r} cannot be suggested")
    return params


def describe_distribution(distribution: BaseDistribution) -> str:
    """A distribution as one short line: ``float 0.01..0.3 log``, ``int 3..15``,
    ``categorical ['gini', 'entropy']``."""
    from optuna.distributions import distribution_to_json

    return describe_json(json.loads(distribution_to_json(distribution)))


def describe_json(entry: Mapping[str, Any]) -> str:
    """:func:`describe_distribution` of a distribution in Optuna's JSON form (what
    :func:`space_as_json` writes): readers of a study's artifacts need no Optuna."""
    kind_name = str(entry.get("name", ""))
    attributes = entry.get("attributes") or {}
    if kind_name.startswith("Categorical"):
        return f"categorical {list(attributes.get('choices', []))!r}"
    kind = "int" if kind_name.startswith("Int") else "float"
    text = f"{kind} {attributes.get('low')}..{attributes.get('high')}"
    if attributes.get("log") or "Log" in kind_name:
        text += " log"
    step = attributes.get("step", attributes.get("q"))
    if step not in (None, 1):
        text += f" step {step}"
    return text


def space_as_json(space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """Optuna's JSON form of each distribution (``optuna.distributions.json_to_distribution``
    reads it back)."""
    from optuna.distributions import distribution_to_json

    return {name: json.loads(distribution_to_json(d)) for name, d in space.items()}


def observed_space(study: optuna.Study) -> SearchSpace:
    """The distribution each parameter was last suggested from, over the study's trials."""
    space: SearchSpace = {}
    for trial in study.get_trials(deepcopy=False):
        space.update(trial.distributions)
    return space


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
