"""``StudyTracker``: an Optuna study as a parent run, each trial as a child run.

Use it with any study::

    tracker = StudyTracker("iris")
    study.optimize(tracker.wrap(objective), callbacks=[tracker])
    tracker.finish(study)

``wrap`` starts a trial's run when the trial starts and streams what ``trial.report`` gets
as a stepped metric; the callback ends the run with the trial's final state, value and
parameters (a callback alone, without ``wrap``, writes each run when its trial ends).
Every run names its parent explicitly (never MLflow's fluent active run) and is written
through flowscope's journal, so threads (``n_jobs``), processes and a tracking outage are
all safe; nothing here holds a lock while an objective runs.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flowscope._imports import try_import
from flowscope.errors import FlowscopeError
from flowscope.tuning import names
from flowscope.tuning.claims import claim

try_import("optuna", "tune")  # a clear message, not a bare ImportError, without it

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from flowscope.config import Settings
    from flowscope.tracking.courier import Courier
    from flowscope.tracking.run import Run
    from flowscope.tuning.summary import StudySummary

logger = logging.getLogger(__name__)

_UNSAFE_KEY = re.compile(r"[^/\w.\- :]")
_MAX_PARAM_LENGTH = 6000
# How long the journal of a dead worker's trial may stay busy (another process delivering
# it) before that trial's run is ended FAILED all the same.
_ADOPT_WAIT = 60.0
# How often the parent's best-so-far also looks at the other workers' trials in the storage.
_BEST_REFRESH = 2.0


class StudyTracker:
    """Records one study: a parent run of kind ``tuning`` shared by every worker, and a
    child run of kind ``trial`` per trial, all in the experiment of ``task``.

    ``metric_name`` names the objective's value in trial runs (its intermediate values are
    ``intermediate_<metric_name>``); ``search_space``, when known up front, is logged on
    the parent; ``importance_seed`` seeds fANOVA so importances can be reproduced.
    A trial's run is created when the trial ends, with the others ending about then, or
    once it has run ``live_after`` seconds (2 by default), from then on as it goes.
    """

    def __init__(
        self,
        task: str,
        *,
        metric_name: str = "value",
        search_space: Mapping[str, BaseDistribution] | None = None,
        settings: Settings | None = None,
        params: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | None = None,
        importance_seed: int = 0,
        live_after: float | None = None,
    ) -> None:
        from flowscope.config import load_settings

        if not metric_name or _UNSAFE_KEY.search(metric_name) or len(metric_name) > 200:
            raise FlowscopeError(
                f"metric name {metric_name!r} is not one MLflow keeps: use letters, digits, "
                "'_', '-', '.', ' ', ':' or '/'"
            )
        self.task = task
        self.metric_name = metric_name
        self.search_space = dict(search_space or {})
        self.settings = settings or load_settings()
        # a trial's run neither waits for the store nor captures the environment again
        self._trial_settings = self.settings.model_copy(
            update={"start_timeout": 0.0, "autolog": False}
        )
        self.params = dict(params or {})
        self.tags = dict(tags or {})
        self.importance_seed = importance_seed
        self.live_after = live_after
        self._lock = threading.Lock()
        self._parent: Run | None = None
        self._parent_local_id: str | None = None
        self._parent_run_id: str | None = None
        self._published = False
        self._open: dict[int, tuple[Run, float]] = {}
        self._handled: set[int] = set()
        self._ended: list[Run] = []
        self._best: tuple[float, int] | None = None  # value and number, as last logged
        self._next_best_refresh = 0.0
        self._courier: Courier | None = None

    # -- the parent run ----------------------------------------------------------------

    @property
    def owns_parent(self) -> bool:
        """True in the one worker that created the study's parent run."""
        return self._parent is not None

    @property
    def parent_run_id(self) -> str | None:
        if self._parent is not None and self._parent.run_id:
            return self._parent.run_id
        return self._parent_run_id

    def begin(self, study: optuna.Study) -> None:
        """Join the study's parent run, creating it if no worker has (idempotent).

        The parent is claimed under a fresh local id in the study's user attributes (an
        atomic insert, see :mod:`flowscope.tuning.claims`); only the worker whose id won
        starts the run, and publishes its MLflow id as ``flowscope.parent_run_id``.
        """
        with self._lock:
            if self._parent_local_id is not None:
                return
            candidate = uuid.uuid4().hex
            local_id = str(claim(study, names.PARENT_LOCAL_ID_ATTR, candidate))
            self._parent_local_id = local_id
            if local_id != candidate:
                self._parent_run_id = study.user_attrs.get(names.PARENT_RUN_ID_ATTR)
                return
            from flowscope.tracking.run import start_run
            from flowscope.tuning.space import space_as_json

            self._parent = start_run(
                self.task,
                run_name=study.study_name,
                kind="tuning",
                params={**study_params(study, self.search_space), **self.params},
                tags={
                    names.STUDY_TAG: study.study_name,
                    names.OBJECTIVE_TAG: self.metric_name,
                    **self.tags,
                },
                settings=self.settings,
                local_id=local_id,
            )
            if self.search_space:
                self._parent.log_dict(space_as_json(self.search_space), "tuning/search_space.json")
            self._publish(study)

    def _publish(self, study: optuna.Study) -> None:
        """Tell the other workers the parent's MLflow id, once the store has the run."""
        if self._published or self._parent is None or not self._parent.run_id:
            return
        study.set_user_attr(names.PARENT_RUN_ID_ATTR, self._parent.run_id)
        self._published = True

    def _parent_reference(self, study: optuna.Study) -> Run | str:
        """What a trial's run names as its parent: the MLflow id when known, else the
        parent's local id, which delivery resolves once the parent exists."""
        if self._parent is not None:
            return self._parent
        if self._parent_run_id is None:
            self._parent_run_id = study.user_attrs.get(names.PARENT_RUN_ID_ATTR)
        if self._parent_run_id:
            return self._parent_run_id
        from flowscope.tracking.run import Run

        assert self._parent_local_id is not None
        return Run(
            task=self.task,
            kind="tuning",
            local_id=self._parent_local_id,
            settings=self.settings,
            journal=None,
            writer=None,
        )

    # -- trial runs --------------------------------------------------------------------

    def wrap(self, objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
        """``objective`` with a run per trial, started when the trial starts; each
        ``trial.report(value, step)`` also logs ``intermediate_<metric>`` at ``step``."""
        import optuna

        @functools.wraps(objective)
        def tracked(trial: optuna.Trial) -> Any:
            study = trial.study
            self.begin(study)
            trial_id = trial._trial_id
            run = self._start_trial_run(study, trial_id, trial.number)
            started = time.perf_counter()
            with self._lock:
                self._open[trial_id] = (run, started)
            reported: dict[int, float] = {}
            report = trial.report

            def streamed(value: float, step: int) -> None:
                report(value, step)  # Optuna checks the value and keeps the first per step
                if step not in reported:
                    reported[step] = float(value)
                    run.log_metrics({self._intermediate_key: float(value)}, step=step)

            # the objective gets Optuna's own Trial (integrations check its type)
            trial.report = streamed  # type: ignore[method-assign]
            try:
                return objective(trial)
            except optuna.TrialPruned:
                last = reported[max(reported)] if reported else None
                values = [last] if last is not None and last == last else None
                self._end_wrapped(trial_id, "PRUNED", trial.number, trial.params, values)
                raise
            except BaseException as exc:
                if self._take_open(trial_id) is not None:
                    run.log_error(exc)
                    self._finish_trial_run(
                        run,
                        "FAIL",
                        trial.number,
                        trial.params,
                        None,
                        time.perf_counter() - started,
                    )
                raise

        return tracked

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna's callback: end the trial's run with its final state, value and params,
        and bring the parent's best value up to date."""
        self.begin(study)
        trial_id = trial._trial_id
        opened = self._take_open(trial_id)
        if opened is not None:
            run, started = opened
            self._finish_trial_run(
                run,
                trial.state.name,
                trial.number,
                trial.params,
                trial.values,
                time.perf_counter() - started,
            )
        elif not self._was_handled(trial_id):
            run = self._start_trial_run(study, trial_id, trial.number)
            for step, value in sorted(trial.intermediate_values.items()):
                run.log_metrics({self._intermediate_key: value}, step=step)
            duration = trial.duration.total_seconds() if trial.duration else None
            self._finish_trial_run(
                run, trial.state.name, trial.number, trial.params, trial.values, duration
            )
        self._update_parent(study, trial)

    def fail_stale_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """End FAILED the run of a trial whose worker stopped beating (pass this as the
        RDB storage's ``heartbeat_stale_trial_callback``).

        The dead worker's journal is taken over where it is on this machine, so the run
        ends after everything that worker recorded; otherwise the run is found in the
        store by its local id.
        """
        from flowscope.tracking.resume import attach_run, find_run_id
        from flowscope.tracking.run import ERROR_TAG

        parent_local_id = study.user_attrs.get(names.PARENT_LOCAL_ID_ATTR)
        if not parent_local_id:
            return
        local_id = names.trial_local_id(parent_local_id, trial._trial_id)
        run = _adopt_when_free(self.settings, self.task, local_id)
        if run is None:
            run_id = find_run_id(self.settings, self.task, "trial", local_id)
            if run_id is None:
                logger.warning(
                    "flowscope: trial %d of study %s failed (its worker stopped) but its run "
                    "is not in the store; `flowscope sync` on that worker's machine ends it",
                    trial.number,
                    study.study_name,
                )
                return
            run = attach_run(self.settings, self.task, "trial", run_id)
        run.set_tags(
            {
                ERROR_TAG: "the worker running this trial stopped sending heartbeats",
                names.TRIAL_STATE_TAG: "FAIL",
            }
        )
        run.log_metrics({names.TRIAL_NUMBER_METRIC: trial.number})
        run.end("FAILED", timeout=0)
        with self._lock:
            self._ended.append(run)

    @property
    def _intermediate_key(self) -> str:
        return f"{names.INTERMEDIATE_PREFIX}{self.metric_name}"

    def _start_trial_run(self, study: optuna.Study, trial_id: int, number: int) -> Run:
        from flowscope.tracking.run import start_run

        assert self._parent_local_id is not None
        with self._lock:
            self._handled.add(trial_id)
            parent = self._parent_reference(study)
            courier = self._trial_courier()
        return start_run(
            self.task,
            run_name=f"trial-{number}",
            kind="trial",
            parent=parent,
            tags={names.STUDY_TAG: study.study_name, names.TRIAL_NUMBER_TAG: number},
            settings=self._trial_settings,
            local_id=names.trial_local_id(self._parent_local_id, trial_id),
            courier=courier,
        )

    def _trial_courier(self) -> Courier:
        """The one thread that delivers this worker's trial runs, several to a transaction."""
        if self._courier is None:
            from flowscope.tracking.courier import LIVE_AFTER, Courier
            from flowscope.tracking.store import StoreAccess

            settings = self._trial_settings
            self._courier = Courier(
                StoreAccess(settings),
                live_after=LIVE_AFTER if self.live_after is None else self.live_after,
                max_backoff=settings.max_backoff,
            )
        return self._courier

    def _take_open(self, trial_id: int) -> tuple[Run, float] | None:
        with self._lock:
            return self._open.pop(trial_id, None)

    def _was_handled(self, trial_id: int) -> bool:
        with self._lock:
            return trial_id in self._handled

    def _end_wrapped(
        self,
        trial_id: int,
        state: str,
        number: int,
        params: Mapping[str, Any],
        values: list[float] | None,
    ) -> None:
        opened = self._take_open(trial_id)
        if opened is not None:
            run, started = opened
            self._finish_trial_run(
                run, state, number, params, values, time.perf_counter() - started
            )

    def _finish_trial_run(
        self,
        run: Run,
        state: str,
        number: int,
        params: Mapping[str, Any],
        values: list[float] | None,
        duration: float | None,
    ) -> None:
        run.log_params(loggable_params(params))
        metrics: dict[str, float] = {names.TRIAL_NUMBER_METRIC: float(number)}
        if duration is not None:
            metrics[names.DURATION_METRIC] = duration
        for key, value in zip(self._value_keys(values), values or [], strict=False):
            metrics[key] = float(value)
        run.log_metrics(metrics)
        run.set_tags({names.TRIAL_STATE_TAG: state})
        # the study goes on while the run is delivered; finish() waits for all of them
        run.end(names.RUN_STATUS.get(state, "FAILED"), timeout=0)
        with self._lock:
            self._ended.append(run)

    def _value_keys(self, values: list[float] | None) -> list[str]:
        if not values or len(values) == 1:
            return [self.metric_name]
        return [f"{self.metric_name}_{index}" for index in range(len(values))]

    # -- the parent's progress and summary ---------------------------------------------

    def _update_parent(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Bring the parent's best value, trial and params up to date as the study goes:
        from the trials this worker ends, and from the storage at most once every
        ``_BEST_REFRESH`` seconds for the other workers' (the summary at the end has the
        study's own best)."""
        if self._parent is None:
            return
        with self._lock:
            self._publish(study)
            if trial.state.name != "COMPLETE" or len(study.directions) > 1:
                return
            best = trial if self._improves(study, trial) else None
            now = time.monotonic()
            if now >= self._next_best_refresh:
                self._next_best_refresh = now + _BEST_REFRESH
                try:
                    stored: FrozenTrial | None = study.best_trial
                except ValueError:
                    stored = None
                if stored is not None and self._improves(study, stored):
                    best = stored
            if best is None or best.value is None:
                return
            self._best = (best.value, best.number)
            self._parent.log_metrics(
                {"best_value": best.value, "best_trial": float(best.number)}, step=trial.number
            )
            self._parent.set_tags(
                {
                    names.BEST_TRIAL_TAG: best.number,
                    names.BEST_PARAMS_TAG: json.dumps(best.params, default=str),
                }
            )

    def _improves(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if trial.value is None or trial.value != trial.value:
            return False
        if self._best is None:
            return True
        value, number = self._best
        if trial.value == value:
            return trial.number < number
        maximize = study.direction.name == "MAXIMIZE"
        return trial.value > value if maximize else trial.value < value

    def wait_delivered(self, timeout: float | None = None, *, running: bool = False) -> bool:
        """Wait (at most ``timeout``, default ``flush_timeout``) until the trial runs this
        worker ended are in the store; what is not stays in the journal. ``running`` also
        waits for what the trials still running logged so far (their runs are delivered
        once they have run ``live_after`` seconds)."""
        from flowscope.tracking.resume import wait_delivered

        wait = self.settings.flush_timeout if timeout is None else timeout
        started = time.monotonic()
        with self._lock:
            ended = list(self._ended)
            still_open = [run for run, _ in self._open.values()] if running else []
        delivered = wait_delivered(ended, wait)
        for run in still_open:
            delivered &= run.flush(max(wait - (time.monotonic() - started), 0.0))
        return delivered

    def close(self, timeout: float | None = None) -> bool:
        """End the parent run, if this worker created it, without a summary, and wait (at
        most ``timeout``, default ``flush_timeout``) until this worker's runs are delivered."""
        with self._lock:
            parent = self._parent
        if parent is not None and parent.active:
            parent.end("FINISHED", timeout=0)
            with self._lock:
                self._ended.append(parent)
        return self.wait_delivered(timeout)

    def abort(self, error: BaseException) -> None:
        """End this worker's parent run FAILED (or KILLED when interrupted) with the error,
        and the trial runs still open with it: nothing is left RUNNING."""
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        with self._lock:
            opened = list(self._open.values())
            self._open.clear()
            parent = self._parent
        for run, _ in opened:
            run.log_error(error)
            run.end(status, timeout=0)
            self._ended.append(run)
        if parent is not None and parent.active:
            parent.log_error(error)
            parent.end(status)
        self.wait_delivered()

    def finish(self, study: optuna.Study, *, timeout: float | None = None) -> StudySummary:
        """Write the study's summary on its parent run and end it; wait (at most
        ``timeout``, default ``flush_timeout``) until every run of this worker is delivered.

        The summary: best value, trial and parameters, counts per state, the optimization
        history and parameter importances (fANOVA and PED-ANOVA) as JSON under
        ``tuning/`` with their plots as PNG. Every worker that finishes writes it; the
        last one leaves the summary of the whole study.
        """
        from flowscope.tracking.resume import adopt_journal, attach_run, find_run_id, wait_delivered
        from flowscope.tuning.space import observed_space
        from flowscope.tuning.summary import log_summary, summarize

        self.begin(study)
        summary = summarize(study, seed=self.importance_seed)
        with self._lock:
            parent = self._parent
            if parent is not None and not parent.active:
                parent = None  # finished before: write the summary again, attached
            if parent is None and self._parent is None and self._parent_local_id is not None:
                # the worker that created the parent died on this machine: go on in its
                # journal, so that delivering that journal later cannot end the run KILLED
                parent = adopt_journal(self.settings, self.task, "tuning", self._parent_local_id)
                if parent is not None and not parent.active:  # ended, not delivered yet
                    wait_delivered([parent], self.settings.flush_timeout)
                    parent = None
            if parent is None:
                run_id = self.parent_run_id or study.user_attrs.get(names.PARENT_RUN_ID_ATTR)
                if run_id is None and self._parent_local_id is not None:
                    run_id = find_run_id(self.settings, self.task, "tuning", self._parent_local_id)
                if run_id is not None:
                    self._parent_run_id = run_id
                    parent = attach_run(self.settings, self.task, "tuning", run_id)
            ended = list(self._ended)
        wait = self.settings.flush_timeout if timeout is None else timeout
        started = time.monotonic()
        if parent is None:
            logger.warning(
                "flowscope: the parent run of study %s is not in the store yet; the worker "
                "that created it writes the summary",
                study.study_name,
            )
        else:
            space = None if self.search_space else observed_space(study)
            log_summary(parent, summary, space)
            parent.end("FINISHED", timeout=wait)
            self._publish(study)
            if self._parent is None and parent.run_id is not None:  # adopted or attached
                self._parent_run_id = parent.run_id
                if study.user_attrs.get(names.PARENT_RUN_ID_ATTR) is None:
                    study.set_user_attr(names.PARENT_RUN_ID_ATTR, parent.run_id)
        wait_delivered(ended, max(wait - (time.monotonic() - started), 0.0))
        self._deliver_orphans(study, max(wait - (time.monotonic() - started), 0.0))
        return summary

    def _deliver_orphans(self, study: optuna.Study, timeout: float) -> None:
        """Finish and deliver the runs of finished trials that a worker on this machine
        left in its journal when it died: killed after Optuna stored a trial's state and
        before its run ended, or before its ended run was delivered."""
        from optuna.trial import TrialState

        from flowscope.tracking.journal import SUFFIX
        from flowscope.tracking.resume import adopt_journal, wait_delivered

        if self._parent_local_id is None:
            return
        adopted: list[Run] = []
        for trial in study.get_trials(deepcopy=False):
            if trial.state in (TrialState.RUNNING, TrialState.WAITING):
                continue  # a stale trial is failed, and its run ended, by fail_stale_trial
            local_id = names.trial_local_id(self._parent_local_id, trial._trial_id)
            if not (self.settings.journal_dir / f"{local_id}{SUFFIX}").exists():
                continue
            run = adopt_journal(self.settings, self.task, "trial", local_id)
            if run is None:
                continue  # delivered meanwhile, or its worker is alive
            if run.active:
                duration = trial.duration.total_seconds() if trial.duration else None
                self._finish_trial_run(
                    run, trial.state.name, trial.number, trial.params, trial.values, duration
                )
            adopted.append(run)
        if adopted:
            logger.warning(
                "flowscope: delivering %d trial run(s) of study %s that a stopped worker left",
                len(adopted),
                study.study_name,
            )
            wait_delivered(adopted, timeout)


def study_params(
    study: optuna.Study, search_space: Mapping[str, BaseDistribution]
) -> dict[str, Any]:
    """What describes a study as the parameters of its parent run."""
    from flowscope.tuning.space import describe_distribution
    from flowscope.tuning.storage import display_url

    storage = study._storage
    backend = getattr(storage, "_backend", storage)
    url = getattr(backend, "url", None)
    params: dict[str, Any] = {
        "study_name": study.study_name,
        "storage": display_url(url) if url else type(backend).__name__,
        "sampler": type(study.sampler).__name__,
        "pruner": type(study.pruner).__name__,
        "direction": ",".join(d.name.lower() for d in study.directions),
    }
    for name, distribution in search_space.items():
        params[f"space.{_safe_key(name)}"] = describe_distribution(distribution)
    return params


def loggable_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Optuna parameter names and values as MLflow keeps them: characters MLflow refuses
    in a key become ``_``, overlong values are cut."""
    return {_safe_key(name): str(value)[:_MAX_PARAM_LENGTH] for name, value in params.items()}


def _safe_key(name: str) -> str:
    return _UNSAFE_KEY.sub("_", str(name))[:250] or "_"


def _adopt_when_free(settings: Settings, task: str, local_id: str) -> Run | None:
    """Take over a dead worker's trial journal on this machine, waiting (bounded) while
    another process delivers it; None when it is not here (or no longer here)."""
    from flowscope.tracking.journal import SUFFIX
    from flowscope.tracking.resume import adopt_journal

    path = settings.journal_dir / f"{local_id}{SUFFIX}"
    deadline = time.monotonic() + _ADOPT_WAIT
    while True:
        run = adopt_journal(settings, task, "trial", local_id)
        if run is not None or not path.exists() or time.monotonic() > deadline:
            return run
        time.sleep(0.2)  # a sync delivering it ends it KILLED; ours comes after
