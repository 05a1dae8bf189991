"""``flowscope.tune``: run an Optuna study with every trial recorded, alone or as one of many
workers sharing the study."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowscope._imports import try_import
from flowscope.errors import FlowscopeError
from flowscope.public_reason import public_reason

try_import("optuna", "tune")  # a clear message, not a bare ImportError, without it

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

    from flowscope.config import Settings
    from flowscope.tuning.summary import StudySummary
    from flowscope.tuning.tracker import StudyTracker

logger = logging.getLogger(__name__)

DIRECTIONS = {"max": "maximize", "min": "minimize", "maximize": "maximize", "minimize": "minimize"}


@dataclass
class TuneResult:
    """What one call of :func:`tune` left: the study, its parent run and its summary
    (None when the call did not write one)."""

    study: optuna.Study
    parent_run_id: str | None
    summary: StudySummary | None

    @property
    def best_trial(self) -> optuna.trial.FrozenTrial:
        return self.study.best_trial


def open_study(
    name: str | None,
    *,
    storage: str | optuna.storages.BaseStorage | None = None,
    direction: str | None = None,
    directions: Sequence[str] | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    settings: Settings | None = None,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    stale_trial_callback: Callable[..., None] | None = None,
) -> optuna.Study:
    """Create the study ``name`` in ``storage`` or load it (SQLite beside the tracking
    store by default); a direction that contradicts an existing study is an error."""
    import optuna

    from flowscope.config import load_settings
    from flowscope.tuning.storage import default_storage_url, display_url, open_storage

    settings = settings or load_settings()
    wanted = _directions(direction, directions)
    if storage is None or isinstance(storage, str):
        url = storage or default_storage_url(settings)
        storage = open_storage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            stale_trial_callback=stale_trial_callback,
        )
        where = display_url(url)
    else:
        where = type(storage).__name__
    try:
        study = optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=[optuna.study.StudyDirection[d.upper()] for d in wanted or ["minimize"]],
            load_if_exists=True,
        )
    except optuna.exceptions.StorageInternalError as exc:
        raise FlowscopeError(
            f"cannot open study {name!r}: {public_reason(exc)}", detail=f"{where}: {exc}"
        ) from None
    existing = [d.name.lower() for d in study.directions]
    if wanted and existing != wanted:
        raise FlowscopeError(
            f"study {study.study_name!r} in {where} is set to {', '.join(existing)}; "
            f"direction {', '.join(wanted)} contradicts it (use another study name)"
        )
    return study


def tune(
    objective: Callable[[optuna.Trial], Any],
    *,
    study: str | optuna.Study | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    n_jobs: int = 1,
    task: str | None = None,
    storage: str | optuna.storages.BaseStorage | None = None,
    direction: str | None = None,
    directions: Sequence[str] | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    metric_name: str = "value",
    search_space: Mapping[str, BaseDistribution] | None = None,
    catch: tuple[type[Exception], ...] = (),
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    params: Mapping[str, Any] | None = None,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    settings: Settings | None = None,
    summarize: bool = True,
) -> TuneResult:
    """Optimize ``objective`` with every trial a child run of the study's parent run.

    ``study`` is a study or its name (created or loaded in ``storage``: a URL, SQLite
    beside the tracking store by default). ``n_trials`` is the study's total, shared
    exactly by every worker that runs it (this call's ``n_jobs`` threads and any other
    process): no worker starts a trial once the study has that many. ``task`` names the
    experiment (default: the study's name). With ``heartbeat_interval`` (seconds) a worker
    that dies mid-trial has that trial failed, and its run ended FAILED, by the others
    after ``grace_period``. At the end the summary (best trial, history, importances) is
    written on the parent run unless ``summarize`` is false (the parent run is ended all
    the same).

    >>> def objective(trial):                                      # doctest: +SKIP
    ...     x = trial.suggest_float("x", -10, 10)
    ...     return (x - 2) ** 2
    >>> result = flowscope.tune(objective, study="quadratic", n_trials=20, n_jobs=2)
    """
    import optuna

    from flowscope.config import load_settings
    from flowscope.tuning.budget import BudgetSpent, TrialBudget
    from flowscope.tuning.tracker import StudyTracker

    if n_trials is not None and n_trials < 1:
        raise FlowscopeError(f"n_trials must be at least 1, not {n_trials}")
    if n_jobs < 1:
        raise FlowscopeError(f"n_jobs must be at least 1, not {n_jobs}")
    settings = settings or load_settings()
    holder: list[StudyTracker] = []

    def on_stale(stale_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if holder:
            holder[0].fail_stale_trial(stale_study, trial)

    if not isinstance(study, optuna.Study):
        study = open_study(
            study,
            storage=storage,
            direction=direction,
            directions=directions,
            sampler=sampler,
            pruner=pruner,
            settings=settings,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            stale_trial_callback=on_stale,
        )
    tracker = StudyTracker(
        task or study.study_name,
        metric_name=metric_name,
        search_space=search_space,
        settings=settings,
        params={**({"n_trials": n_trials} if n_trials else {}), **(params or {})},
    )
    holder.append(tracker)
    tracker.begin(study)
    budget = TrialBudget(study, n_trials) if n_trials is not None else None
    try:
        with budget.installed() if budget else contextlib.nullcontext():
            study.optimize(
                tracker.wrap(objective),
                n_trials=None if budget else n_trials,
                timeout=timeout,
                n_jobs=n_jobs,
                catch=catch,
                callbacks=[tracker, *callbacks],
            )
    except BudgetSpent:
        pass
    settle_stale_trials(study)
    summary = None
    if summarize:
        summary = tracker.finish(study)
    else:
        tracker.close()
    return TuneResult(study=study, parent_run_id=tracker.parent_run_id, summary=summary)


def settle_stale_trials(study: optuna.Study, *, poll: float = 0.5) -> None:
    """With heartbeats on, wait (at most the grace period and one beat) until no trial of
    ``study`` is left RUNNING by a dead worker, failing those that went stale.

    Trials of live workers elsewhere keep beating and are left to them."""
    import warnings

    import optuna
    from optuna.storages import fail_stale_trials

    storage = study._storage
    beat = getattr(storage, "get_heartbeat_interval", None)
    interval = beat() if beat is not None else None
    if not interval:
        return
    backend = getattr(storage, "_backend", storage)
    grace = getattr(backend, "grace_period", None) or 2 * interval
    deadline = time.monotonic() + grace + 2 * interval
    running = (optuna.trial.TrialState.RUNNING,)
    while study.get_trials(deepcopy=False, states=running) and time.monotonic() < deadline:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)
        time.sleep(poll)


def _directions(direction: str | None, directions: Sequence[str] | None) -> list[str] | None:
    chosen = list(directions) if directions else ([direction] if direction else None)
    if chosen is None:
        return None
    resolved = []
    for item in chosen:
        if item not in DIRECTIONS:
            raise FlowscopeError(f"direction must be max or min, not {item!r}")
        resolved.append(DIRECTIONS[item])
    return resolved
