"""A training request from the workbench or ``POST /api/jobs``, checked whole before any job
is queued: the data set, the target, each model type and its parameters, the split. What is
wrong is a 400 naming it, and nothing is queued."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowscope.config import Settings
from flowscope.errors import FlowscopeError
from flowscope.jobs.queue import JobQueue

MAX_MODEL_TYPES = 10
MAX_TUNE_TRIALS = 1000
SEED_LIMIT = 2**32  # numpy's random seeds are below it
_TASK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._ -]{0,99}$")


@dataclass
class TrainRequest:
    dataset_id: str
    target: str
    model_types: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    test_size: float = 0.2
    seed: int = 0
    register: str | None = None
    tune_trials: int = 0

    @classmethod
    def from_json(cls, data: Any) -> TrainRequest:
        """The request from a JSON body; a wrong shape is a 400 naming the field."""
        if not isinstance(data, dict):
            raise FlowscopeError("the request body must be a JSON object")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise FlowscopeError(f"unknown field(s): {', '.join(unknown)}")
        for name in ("dataset_id", "target", "model_types"):
            if name not in data:
                raise FlowscopeError(f"missing field {name!r}")
        types = data["model_types"]
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise FlowscopeError("model_types must be a list of model type names")
        params = data.get("params") or {}
        if not isinstance(params, dict):
            raise FlowscopeError("params must be an object of parameter: value")
        return cls(
            dataset_id=_text(data, "dataset_id"),
            target=_text(data, "target"),
            model_types=types,
            params=params,
            task=_optional_text(data, "task"),
            test_size=_number(data, "test_size", 0.2),
            seed=int(_number(data, "seed", 0, whole=True)),
            register=_optional_text(data, "register"),
            tune_trials=int(_number(data, "tune_trials", 0, whole=True)),
        )

    @classmethod
    def from_form(cls, form: Any) -> TrainRequest:
        """The request from the workbench's train form (a Starlette ``FormData``): its
        fields as the JSON body has them, then the same checks as :meth:`from_json`."""

        def text(name: str) -> str:
            value = form.get(name)
            return value if isinstance(value, str) else ""

        return cls.from_json(
            {
                "dataset_id": text("dataset_id"),
                "target": text("target"),
                "model_types": [t for t in form.getlist("model_types") if isinstance(t, str)],
                "params": parse_params(text("params")),
                "task": text("task"),
                "test_size": text("test_size").strip(),
                "seed": text("seed").strip(),
                "register": text("register"),
                "tune_trials": text("tune_trials").strip(),
            }
        )


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str):
        raise FlowscopeError(f"{name} must be a string")
    return value.strip()


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    return None if data.get(name) is None else (_text(data, name) or None)


def _number(data: dict[str, Any], name: str, default: float, *, whole: bool = False) -> float:
    """The field ``name`` as a finite number (a whole one when ``whole``), from a JSON number
    or a form's text; ``default`` when absent or empty."""
    value = data.get(name, default)
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FlowscopeError(f"{name} must be a number, not {value!r}")
    try:
        number = float(value)
    except (ValueError, OverflowError):  # not a number; an integer beyond any float
        raise FlowscopeError(f"{name} must be a number, not {value!r}") from None
    if not math.isfinite(number):
        raise FlowscopeError(f"{name} must be a finite number, not {number:g}")
    if whole and not number.is_integer():
        raise FlowscopeError(f"{name} must be a whole number, not {number:g}")
    return number


def parse_params(text: str) -> dict[str, str]:
    """``key=value`` per line (or separated by commas), as the workbench form sends them."""
    params: dict[str, str] = {}
    for line in re.split(r"[\n,;]", text or ""):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise FlowscopeError(f"parameter {line.strip()!r} is not key=value")
        params[key.strip()] = value.strip()
    return params


def submit_training(
    settings: Settings,
    queue: JobQueue,
    request: TrainRequest,
    *,
    user: str,
    permit: Callable[[str, str | None], None] | None = None,
) -> list[str]:
    """Check ``request`` and queue one job per model type; the job ids. ``permit(task,
    register)`` raises when the user may not train in that task's experiment (or register
    that model); it is called once the request is known to be good, before anything is
    queued."""
    import uuid

    from flowscope.modeling.catalog import build_estimator, estimator_class, get_model_type
    from flowscope.modeling.data import validate_training_data
    from flowscope.modeling.uploads import load_dataset

    frame, meta = load_dataset(settings, request.dataset_id)
    problem = validate_training_data(frame, request.target)
    if not request.model_types:
        raise FlowscopeError("pick at least one model type")
    if len(set(request.model_types)) > MAX_MODEL_TYPES:
        raise FlowscopeError(f"pick at most {MAX_MODEL_TYPES} model types")
    if not 0 < request.test_size < 1:
        raise FlowscopeError(f"test_size must be between 0 and 1, not {request.test_size:g}")
    if not 0 <= request.seed < SEED_LIMIT:
        raise FlowscopeError(f"seed must be between 0 and {SEED_LIMIT - 1}, not {request.seed}")
    if not 0 <= request.tune_trials <= MAX_TUNE_TRIALS:
        raise FlowscopeError(f"tune_trials must be between 0 and {MAX_TUNE_TRIALS}")
    task = request.task or _task_from(meta, request.dataset_id)
    if not _TASK.match(task):
        raise FlowscopeError(
            f"task {task!r} must start with a letter or digit and hold only letters, "
            "digits, '.', '_', '-' and spaces (at most 100 characters)"
        )
    if request.register is not None and not _TASK.match(request.register):
        raise FlowscopeError(f"register: {request.register!r} is not a usable model name")
    for model_type in dict.fromkeys(request.model_types):
        get_model_type(model_type)
        estimator_class(model_type, problem)  # the model type does this problem
        if not request.tune_trials:
            build_estimator(model_type, problem, request.params, request.seed)
    if permit is not None:
        permit(task, request.register)
    base = {
        "dataset_id": request.dataset_id,
        "target": request.target,
        "params": {key: str(value) for key, value in request.params.items()},
        "task": task,
        "test_size": request.test_size,
        "seed": request.seed,
        "register": request.register,
        "tune_trials": request.tune_trials,
        "problem": problem,
    }
    batch = uuid.uuid4().hex[:12]
    kind = "tune" if request.tune_trials else "train"
    return [
        queue.submit(kind, {**base, "model_type": model_type}, user=user, batch=batch)
        for model_type in dict.fromkeys(request.model_types)
    ]


def _task_from(meta: dict[str, Any], dataset_id: str) -> str:
    stem = str(meta.get("filename") or dataset_id.removeprefix("builtin:")).rsplit(".", 1)[0]
    cleaned = re.sub(r"[^A-Za-z0-9._ -]+", "-", stem).strip(" .-_")[:100]
    return cleaned or "workbench"
