"""``flowscope tune``: a study over a catalog model type on a data set, run by this process
or by worker processes it starts, then the best configuration refit, logged and registered.

Everything a user can get wrong (data, target, model type, metric, direction, search space,
sampler, pruner, storage) is checked before the parent run starts, so bad input leaves no
run behind.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope._imports import try_import
from flowscope.errors import FlowscopeError

try_import("optuna", "tune")  # a clear message, not a bare ImportError, without it

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from flowscope.config import Settings
    from flowscope.modeling.train import TrainResult
    from flowscope.tuning.scoring import Metric
    from flowscope.tuning.space import SearchSpace
    from flowscope.tuning.summary import StudySummary

logger = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "cmaes")
PRUNERS = ("median", "hyperband", "none")
Progress = Callable[[int, int | None, float | None], None]


@dataclass
class TuneSpec:
    """What ``flowscope tune`` was asked; JSON-able, so worker processes get the same."""

    dataset: str
    model: str
    trials: int
    target: str | None = None
    timeout: float | None = None
    metric: str | None = None
    direction: str | None = None
    space: str | None = None
    study: str | None = None
    storage: str | None = None
    n_jobs: int = 1
    workers: int = 1
    sampler: str = "tpe"
    pruner: str = "median"
    register: str | None = None
    task: str | None = None
    seed: int = 0
    test_size: float = 0.2
    heartbeat: int = 30
    grace: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # overrides for worker processes


@dataclass
class Prepared:
    """A checked spec: the data, its problem, the metric, the space, the names."""

    spec: TuneSpec
    frame: pd.DataFrame
    target: str
    problem: str
    metric: Metric
    direction: str
    space: SearchSpace
    task: str
    study_name: str
    storage_url: str

    def objective(self) -> Any:
        from flowscope.tuning.objective import CatalogObjective

        return CatalogObjective(
            self.frame,
            self.target,
            self.spec.model,
            self.problem,
            self.metric,
            self.space,
            test_size=self.spec.test_size,
            seed=self.spec.seed,
        )

    def sampler(self, worker: int = 0) -> optuna.samplers.BaseSampler:
        import optuna

        seed = self.spec.seed + worker  # workers with one seed would suggest the same
        if self.spec.sampler == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.spec.sampler == "cmaes":
            from flowscope._imports import try_import

            try_import("cmaes", "tune")
            return optuna.samplers.CmaEsSampler(seed=seed)
        return optuna.samplers.TPESampler(seed=seed)

    def pruner(self) -> optuna.pruners.BasePruner:
        import optuna

        if self.spec.pruner == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=10)
        if self.spec.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=10)
        return optuna.pruners.NopPruner()

    def run_params(self) -> dict[str, Any]:
        return {
            "model_type": self.spec.model,
            "dataset": self.spec.dataset,
            "target": self.target,
            "problem": self.problem,
            "metric": self.metric.name,
            "n_trials": self.spec.trials,
            "seed": self.spec.seed,
            "test_size": self.spec.test_size,
        }


@dataclass
class TuneOutcome:
    """What ``flowscope tune`` produced."""

    study_name: str
    parent_run_id: str | None
    summary: StudySummary
    refit: TrainResult | None
    metric: str
    worker_errors: list[str]


def quiet_optuna() -> None:
    """Keep Optuna to warnings: a line per trial would fight the progress bar."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def prepare(spec: TuneSpec, settings: Settings) -> Prepared:
    """Check everything in ``spec`` before anything is written."""
    from flowscope.modeling.catalog import estimator_class, get_model_type
    from flowscope.modeling.data import load_dataset, validate_training_data
    from flowscope.tuning.scoring import metric_for
    from flowscope.tuning.space import catalog_space, check_params, load_space
    from flowscope.tuning.storage import default_storage_url
    from flowscope.tuning.study import DIRECTIONS

    if spec.trials < 1:
        raise FlowscopeError(f"--trials must be at least 1, not {spec.trials}")
    if spec.n_jobs < 1 or spec.workers < 1:
        raise FlowscopeError("--n-jobs and --workers must be at least 1")
    if spec.sampler not in SAMPLERS:
        raise FlowscopeError(f"unknown sampler {spec.sampler!r}; use one of {', '.join(SAMPLERS)}")
    if spec.pruner not in PRUNERS:
        raise FlowscopeError(f"unknown pruner {spec.pruner!r}; use one of {', '.join(PRUNERS)}")
    get_model_type(spec.model)
    if spec.model == "lightgbm_quantile":
        raise FlowscopeError("tuning lightgbm_quantile is not supported; tune lightgbm instead")
    frame, default_target = load_dataset(spec.dataset)
    target = spec.target or default_target
    if target is None:
        raise FlowscopeError(f"{spec.dataset} has no default target; name one with --target")
    problem = validate_training_data(frame, target)
    metric = metric_for(spec.metric, problem)
    direction = metric.direction
    if spec.direction is not None:
        if spec.direction not in DIRECTIONS:
            raise FlowscopeError(f"--direction must be max or min, not {spec.direction!r}")
        if DIRECTIONS[spec.direction] != metric.direction:
            better = "higher" if metric.direction == "maximize" else "lower"
            raise FlowscopeError(
                f"--direction {spec.direction} contradicts metric {metric.name} "
                f"({better} is better)"
            )
    estimator_class(spec.model, problem)  # the model type does this problem
    where = spec.space or "the catalog"
    space = load_space(spec.space) if spec.space else catalog_space(spec.model)
    known = estimator_class(spec.model, problem)().get_params(deep=False)
    check_params(space, known, spec.model, where)
    task = spec.task or Path(spec.dataset).stem
    return Prepared(
        spec=spec,
        frame=frame,
        target=target,
        problem=problem,
        metric=metric,
        direction=direction,
        space=space,
        task=task,
        study_name=spec.study or f"{task}-{spec.model}",
        storage_url=spec.storage or default_storage_url(settings),
    )


def run_catalog_study(
    spec: TuneSpec, settings: Settings, on_progress: Progress | None = None
) -> TuneOutcome:
    """Run the study ``spec`` describes: ``spec.workers`` processes (this one alone when
    1), each with ``spec.n_jobs`` threads, ``spec.trials`` trials in all; then the summary
    on the parent run and the best configuration refit and logged (registered as
    ``spec.register`` when given)."""
    from flowscope.tuning.study import open_study, settle_stale_trials
    from flowscope.tuning.tracker import StudyTracker

    prepared = prepare(spec, settings)
    tracker = StudyTracker(
        prepared.task,
        metric_name=prepared.metric.name,
        search_space=prepared.space,
        settings=settings,
        params=prepared.run_params(),
    )
    study = open_study(
        prepared.study_name,
        storage=prepared.storage_url,
        direction=prepared.direction,
        sampler=prepared.sampler(),
        pruner=prepared.pruner(),
        settings=settings,
        heartbeat_interval=spec.heartbeat,
        grace_period=spec.grace,
        stale_trial_callback=tracker.fail_stale_trial,
    )
    objective = prepared.objective() if spec.workers == 1 else None
    tracker.begin(study)
    stop = threading.Event()
    watcher = threading.Thread(
        target=_watch, args=(study, spec.trials, on_progress, stop), daemon=True
    )
    if on_progress is not None:
        watcher.start()
    errors: list[str] = []
    try:
        if objective is not None:
            _run_here(study, tracker, objective, spec)
        else:
            errors = _run_workers(spec, prepared, settings)
        settle_stale_trials(study)
    except BaseException as exc:  # interrupted: the parent run must not stay RUNNING
        tracker.abort(exc)
        raise
    finally:
        stop.set()
        if watcher.is_alive():
            watcher.join()
    summary = tracker.finish(study)
    refit = None
    if summary.best is not None:
        refit = refit_best(prepared, study, tracker.parent_run_id, settings)
    return TuneOutcome(
        study_name=study.study_name,
        parent_run_id=tracker.parent_run_id,
        summary=summary,
        refit=refit,
        metric=prepared.metric.name,
        worker_errors=errors,
    )


def _run_here(study: optuna.Study, tracker: Any, objective: Any, spec: TuneSpec) -> None:
    from flowscope.tuning.budget import BudgetSpent, TrialBudget

    try:
        with TrialBudget(study, spec.trials).installed():
            study.optimize(
                tracker.wrap(objective),
                timeout=spec.timeout,
                n_jobs=spec.n_jobs,
                catch=(Exception,),  # one bad configuration fails its trial, not the study
                callbacks=[tracker],
            )
    except BudgetSpent:
        pass


def _run_workers(spec: TuneSpec, prepared: Prepared, settings: Settings) -> list[str]:
    """Start ``spec.workers`` processes on the study and wait for them; what went wrong
    in each, one line per failed worker."""
    overrides = {
        "tracking_uri": settings.tracking_uri,
        "artifacts_dir": str(settings.artifacts_dir),
        "artifact_root": settings.artifact_root,
        "journal_dir": str(settings.journal_dir),
        **spec.settings,
    }
    worker_spec = asdict(spec) | {
        "study": prepared.study_name,
        "storage": prepared.storage_url,
        "task": prepared.task,
        "settings": overrides,
    }
    with tempfile.TemporaryDirectory(prefix="flowscope-tune-") as folder:
        processes = []
        for index in range(spec.workers):
            path = Path(folder) / f"worker-{index}.json"
            path.write_text(json.dumps(worker_spec | {"worker": index}))
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "flowscope.tuning.worker", str(path)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        errors = []
        for index, process in enumerate(processes):
            _, stderr = process.communicate()
            if process.returncode != 0:
                last = (stderr or "").strip().splitlines()
                errors.append(
                    f"worker {index} exited with {process.returncode}: "
                    f"{last[-1] if last else 'no message'}"
                )
    return errors


def run_worker(spec_data: dict[str, Any]) -> None:
    """One worker process of a study (``python -m flowscope.tuning.worker SPEC``): trials
    until the study has its total, no summary (the process that started it writes it)."""
    from flowscope.config import load_settings
    from flowscope.tuning.study import tune

    quiet_optuna()
    worker = int(spec_data.pop("worker", 0))
    spec = TuneSpec(**spec_data)
    settings = load_settings(**spec.settings)
    prepared = prepare(spec, settings)
    tune(
        prepared.objective(),
        study=prepared.study_name,
        storage=prepared.storage_url,
        n_trials=spec.trials,
        timeout=spec.timeout,
        n_jobs=spec.n_jobs,
        task=prepared.task,
        direction=prepared.direction,
        sampler=prepared.sampler(worker + 1),
        pruner=prepared.pruner(),
        metric_name=prepared.metric.name,
        search_space=prepared.space,
        catch=(Exception,),
        heartbeat_interval=spec.heartbeat,
        grace_period=spec.grace,
        settings=settings,
        summarize=False,
    )


def _watch(
    study: optuna.Study, total: int, on_progress: Progress | None, stop: threading.Event
) -> None:
    """Tell ``on_progress`` how many trials are done and the best value, twice a second."""
    import optuna

    finished = (
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    )
    while True:
        stopping = stop.is_set()
        try:
            trials = study.get_trials(deepcopy=False, states=finished)
            complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
            best = None
            if complete:
                values = [t.value for t in complete if t.value is not None]
                maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
                best = (max if maximize else min)(values) if values else None
            if on_progress is not None:
                on_progress(len(trials), total, best)
        except Exception as exc:  # a storage hiccup must not end the study
            logger.debug("progress: %s", exc)
        if stopping:
            return
        stop.wait(0.5)


def refit_best(
    prepared: Prepared, study: optuna.Study, parent_run_id: str | None, settings: Settings
) -> TrainResult:
    """Fit the best trial's configuration on the training rows, evaluated and logged as
    ``flowscope train`` does, as a child of the study's run; registered when asked, the
    version tagged with the study and trial."""
    from flowscope.modeling.train import train
    from flowscope.tuning import names

    best = study.best_trial
    tags: dict[str, Any] = {
        names.STUDY_TAG: study.study_name,
        names.TRIAL_NUMBER_TAG: best.number,
    }
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    result = train(
        prepared.frame,
        prepared.target,
        prepared.spec.model,
        best.params,
        task=prepared.task,
        test_size=prepared.spec.test_size,
        seed=prepared.spec.seed,
        run_name=f"{study.study_name}-best",
        register=prepared.spec.register,
        dataset_name=prepared.spec.dataset,
        tags=tags,
        settings=settings,
        explain=False,
    )
    if prepared.spec.register and result.registered_version:
        _tag_version(settings, prepared.spec.register, result.registered_version, tags)
    return result


def _tag_version(settings: Settings, name: str, version: str, tags: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(settings.tracking_uri, settings.registry_uri)
    for key, value in tags.items():
        if key != "mlflow.parentRunId":
            client.set_model_version_tag(name, version, key, str(value))
    if "mlflow.parentRunId" in tags:
        client.set_model_version_tag(
            name, version, "flowscope.study_run_id", tags["mlflow.parentRunId"]
        )
