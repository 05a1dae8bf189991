"""Tuning, side by side: one cheap objective through bare Optuna, Optuna with
``optuna_integration.MLflowCallback`` and ``flowscope.tune``; then the study page at 10,000
trials.

Run from the repository root (either form)::

    .venv/bin/python bench/tuning.py
    .venv/bin/python -m bench.tuning --trials 200 --storages sqlite --page-trials 2000

For each storage (SQLite files in a temporary folder; throwaway PostgreSQL databases,
dropped at the end), each ``--n-jobs`` value and each mode, a fresh study runs
``--trials`` trials of the same objective: four parameters, ``--reports`` intermediate
values (``trial.report``), ``--work-ms`` of sleep standing for a model fit in native code
(which releases the GIL, as XGBoost's and LightGBM's do). The sampler is Optuna's random
sampler, seeded, and nothing is pruned, so Optuna's own cost stays small and the same in
every mode, and what differs is tracking:

- bare: ``study.optimize`` with no tracking;
- mlflow: ``MLflowCallback(tracking_uri=..., metric_name=..., create_experiment=True,
  mlflow_kwargs={"nested": True})`` inside ``mlflow.start_run()``, MLflow's documented
  way to log a study as nested runs (the MLflow store is of the same kind as the
  storage: SQLite beside SQLite, PostgreSQL beside PostgreSQL);
- flowscope: ``flowscope.tune`` (a parent run, a child run per trial started with it,
  intermediate values streamed), timed until every trial's run is in the store; the
  study's summary (importances, history, plots), written once at its end, is timed apart.

Every mode opens its Optuna storage the same way (flowscope's ``open_storage``, heartbeats
off), so the storage's own speed cancels out. The bench prints seconds per trial, the
tracking overhead per trial (the mode's time minus bare Optuna's in the same cell), the
same over the first and the last 100 trials (from each trial's completion time), and
checks that every trial is stored as a child of its study's run. Then it writes a study of
``--page-trials`` trials into a fresh store of each kind (by bulk insert into MLflow's
tables, with the rows flowscope writes: running them would take most of the budget) and
times its page and the page's JSON, as the dashboard serves them.
"""

from __future__ import annotations

import os
import sys

# Run as ``python bench/tuning.py``, this file's folder is sys.path[0], and its neighbour
# bench/logging.py would shadow the standard ``logging`` module; flowscope and bench are
# imported from the repository root instead, whatever the working folder.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import math
import random
import statistics
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rich.console import Console

PG_ADMIN_DSN = os.environ.get("FLOWSCOPE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
METRIC = "loss"
TARGET_OVERHEAD_RATIO = 1 / 5  # flowscope's overhead per trial over MLflowCallback's, at most
TARGET_FLAT = 0.20  # the last window's overhead over the first's, at most this much more
TARGET_PAGE_S = 1.0  # the study page and its JSON at 10,000 trials on SQLite
WARM_UP_TRIALS = 20
INTERMEDIATE_STEPS = 10  # intermediate values per trial of the seeded page study
T0 = 1_700_000_000_000


# -- the objective -----------------------------------------------------------------------


def make_objective(work_s: float, reports: int) -> Callable[[Any], float]:
    """Four parameters, ``reports`` intermediate values, ``work_s`` seconds of work."""

    def objective(trial: Any) -> float:
        x = trial.suggest_float("x", -10.0, 10.0)
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        depth = trial.suggest_int("depth", 2, 12)
        booster = trial.suggest_categorical("booster", ["gbtree", "dart", "gblinear"])
        value = (x - 2.0) ** 2 + abs(math.log10(lr) + 2.0) + 0.1 * depth
        value += {"gbtree": 0.0, "dart": 0.5, "gblinear": 1.0}[booster]
        steps = max(reports, 1)
        for step in range(steps):
            time.sleep(work_s / steps)
            if reports:
                trial.report(value * (1.0 + (steps - step) / steps), step)
        return value

    return objective


# -- stores ------------------------------------------------------------------------------


@dataclass
class Backend:
    """Where one storage kind keeps things: an MLflow store and fresh Optuna databases."""

    name: str
    root: Path
    mlflow_uri: str
    databases: list[str] = field(default_factory=list)  # PostgreSQL databases to drop

    def optuna_url(self, label: str) -> str:
        if self.name == "sqlite":
            return f"sqlite:///{self.root / f'optuna-{label}.db'}"
        return self.new_database(f"optuna_{label}")

    def new_database(self, label: str) -> str:
        import psycopg

        database = f"flowscope_bench_{label}_{uuid.uuid4().hex[:8]}".lower()
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        self.databases.append(database)
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        return f"{base}/{database}"


@contextmanager
def open_backend(name: str, root: Path) -> Iterator[Backend]:
    """A fresh MLflow store of kind ``name`` (its tables created), dropped at the end."""
    from mlflow import MlflowClient

    root.mkdir(parents=True)
    backend = Backend(name, root, f"sqlite:///{root / 'mlflow.db'}")
    try:
        if name == "postgres":
            backend.mlflow_uri = backend.new_database("mlflow")
        MlflowClient(backend.mlflow_uri).search_experiments()  # creates MLflow's tables
        yield backend
    finally:
        if backend.databases:
            import psycopg

            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
                for database in backend.databases:
                    admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def settings_for(backend: Backend, label: str) -> Any:
    from flowscope.config import load_settings

    return load_settings(
        tracking_uri=backend.mlflow_uri,
        artifacts_dir=backend.root / "mlartifacts",
        journal_dir=backend.root / f"journal-{label}",
        autolog=False,
        sync_on_start=False,
        start_timeout=60.0,
        flush_timeout=900.0,
    )


def new_study(url: str, name: str) -> Any:
    import optuna

    from flowscope.tuning.storage import open_storage

    return optuna.create_study(
        study_name=name,
        storage=open_storage(url, heartbeat_interval=None),
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.NopPruner(),
        direction="minimize",
    )


# -- modes -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One mode's turn: a fresh study of ``trials`` trials, ``n_jobs`` at once."""

    backend: Backend
    label: str
    trials: int
    n_jobs: int
    objective: Callable[[Any], float]


@dataclass
class Outcome:
    elapsed_s: float  # until every trial is in the store (and delivered, for flowscope)
    stamps: list[float]  # each trial's completion, seconds after the start, in order
    stored: int  # trials stored as children of the study's run (bare: complete trials)
    orphans: int = 0  # trial runs stored without their parent
    summary_s: float | None = None  # flowscope: the summary written at the study's end


class Stamps:
    """An Optuna callback noting when each trial completes."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, study: Any, trial: Any) -> None:
        now = time.perf_counter()
        with self._lock:
            self.times.append(now)

    def since(self, start: float) -> list[float]:
        return sorted(moment - start for moment in self.times)


def run_bare(cell: Cell) -> Outcome:
    import optuna

    study = new_study(cell.backend.optuna_url(cell.label), cell.label)
    stamps = Stamps()
    start = time.perf_counter()
    study.optimize(cell.objective, n_trials=cell.trials, n_jobs=cell.n_jobs, callbacks=[stamps])
    elapsed = time.perf_counter() - start
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return Outcome(elapsed, stamps.since(start), stored=len(complete))


def run_mlflow(cell: Cell) -> Outcome:
    import mlflow
    from optuna_integration.mlflow import MLflowCallback

    study = new_study(cell.backend.optuna_url(cell.label), cell.label)
    uri = cell.backend.mlflow_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(cell.label)  # the callback's experiment: named after the study
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflowCallback is marked experimental
        callback = MLflowCallback(
            tracking_uri=uri,
            metric_name=METRIC,
            create_experiment=True,
            mlflow_kwargs={"nested": True},
        )
    stamps = Stamps()
    start = time.perf_counter()
    with mlflow.start_run(run_name=cell.label) as parent:
        study.optimize(
            cell.objective, n_trials=cell.trials, n_jobs=cell.n_jobs, callbacks=[callback, stamps]
        )
    elapsed = time.perf_counter() - start
    stored, orphans = children(uri, cell.label, parent.info.run_id)
    return Outcome(elapsed, stamps.since(start), stored=stored, orphans=orphans)


def run_flowscope(cell: Cell) -> Outcome:
    import flowscope
    from flowscope.tuning import StudyTracker

    study = new_study(cell.backend.optuna_url(cell.label), cell.label)
    settings = settings_for(cell.backend, cell.label)
    stamps = Stamps()
    start = time.perf_counter()
    result = flowscope.tune(
        cell.objective,
        study=study,
        n_trials=cell.trials,
        n_jobs=cell.n_jobs,
        task=cell.label,
        metric_name=METRIC,
        settings=settings,
        callbacks=[stamps],
        summarize=False,  # waits until every trial's run is delivered
    )
    elapsed = time.perf_counter() - start
    started = time.perf_counter()
    tracker = StudyTracker(cell.label, metric_name=METRIC, settings=settings)
    tracker.begin(study)
    tracker.finish(study)
    summary_s = time.perf_counter() - started
    assert result.parent_run_id is not None
    stored, orphans = children(settings.tracking_uri, cell.label, result.parent_run_id)
    return Outcome(elapsed, stamps.since(start), stored, orphans, summary_s)


def children(uri: str, experiment: str, parent_run_id: str) -> tuple[int, int]:
    """How many runs of ``experiment`` besides the parent name it as their parent, each
    with its own trial number, and how many name no parent."""
    engine = sa.create_engine(uri)
    query = sa.text(
        """
        SELECT r.name, t.value FROM runs r
        JOIN experiments e ON e.experiment_id = r.experiment_id
        LEFT JOIN tags t ON t.run_uuid = r.run_uuid AND t.key = 'mlflow.parentRunId'
        WHERE e.name = :experiment AND r.run_uuid != :parent
        """
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(query, {"experiment": experiment, "parent": parent_run_id}).all()
    finally:
        engine.dispose()
    named = {name for name, parent in rows if parent == parent_run_id}
    return len(named), sum(1 for _, parent in rows if parent is None)


MODES: dict[str, Callable[[Cell], Outcome]] = {
    "bare": run_bare,
    "mlflow": run_mlflow,
    "flowscope": run_flowscope,
}
LABELS = {
    "bare": "bare Optuna",
    "mlflow": "Optuna + MLflowCallback (nested)",
    "flowscope": "flowscope.tune",
}


# -- figures -----------------------------------------------------------------------------


@dataclass
class Result:
    storage: str
    n_jobs: int
    mode: str
    trials: int
    seconds_per_trial: float
    first_window_s: float  # seconds per trial over the first ``window`` trials
    last_window_s: float  # and the last ``window``
    window: int
    stored: int
    orphans: int
    summary_s: float | None
    overhead_ms: float | None = None  # per trial, against bare Optuna in the same cell
    first_overhead_ms: float | None = None
    last_overhead_ms: float | None = None

    @property
    def complete(self) -> bool:
        return self.stored == self.trials and self.orphans == 0


def measure(storage: str, n_jobs: int, mode: str, outcome: Outcome, trials: int) -> Result:
    stamps = outcome.stamps
    window = min(100, max(trials // 2, 1))
    first = stamps[window - 1] / window
    last = (stamps[-1] - stamps[-1 - window]) / window if len(stamps) > window else first
    return Result(
        storage=storage,
        n_jobs=n_jobs,
        mode=mode,
        trials=trials,
        seconds_per_trial=outcome.elapsed_s / trials,
        first_window_s=first,
        last_window_s=last,
        window=window,
        stored=outcome.stored,
        orphans=outcome.orphans,
        summary_s=outcome.summary_s,
    )


def with_overheads(results: list[Result]) -> None:
    """Each tracked mode's cost per trial above bare Optuna's, in the same cell."""
    for result in results:
        bare = next(
            (
                r
                for r in results
                if r.mode == "bare" and (r.storage, r.n_jobs) == (result.storage, result.n_jobs)
            ),
            None,
        )
        if bare is None or result.mode == "bare":
            continue
        result.overhead_ms = (result.seconds_per_trial - bare.seconds_per_trial) * 1000
        result.first_overhead_ms = (result.first_window_s - bare.first_window_s) * 1000
        result.last_overhead_ms = (result.last_window_s - bare.last_window_s) * 1000


def run_cells(backend: Backend, args: argparse.Namespace, console: Console) -> list[Result]:
    objective = make_objective(args.work_ms / 1000, args.reports)
    results = []
    for mode in args.modes:  # untimed: imports, connections, schemas
        MODES[mode](Cell(backend, f"warm-{mode}", WARM_UP_TRIALS, 1, objective))
    for n_jobs in args.n_jobs:
        for mode in args.modes:
            label = f"{mode}-j{n_jobs}"
            with console.status(f"{backend.name}: {LABELS[mode]}, n_jobs={n_jobs}"):
                outcome = MODES[mode](Cell(backend, label, args.trials, n_jobs, objective))
            result = measure(backend.name, n_jobs, mode, outcome, args.trials)
            console.print(
                f"[dim]{backend.name}: {LABELS[mode]}, n_jobs={n_jobs}: "
                f"{outcome.elapsed_s:.1f} s[/]"
            )
            results.append(result)
    with_overheads(results)
    return results


# -- the study page ----------------------------------------------------------------------


@dataclass
class PageStudy:
    run_id: str
    best_number: int
    best_value: float
    counts: dict[str, int]


def seed_page_study(uri: str, artifacts: Path, trials: int, seed: int = 0) -> PageStudy:
    """A finished study of ``trials`` trials written straight into MLflow's tables, row for
    row as :class:`~flowscope.tuning.tracker.StudyTracker` writes it: a parent run of kind
    ``tuning`` with its space and summary, and per trial a child run with its number,
    state, parameters, value, duration and ``INTERMEDIATE_STEPS`` intermediate values;
    the parent's importances and search space go to its artifact folder."""
    from mlflow import MlflowClient
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )

    from flowscope.tuning import names

    rng = random.Random(seed)
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("page-study", artifact_location=artifacts.as_uri())
    rows: dict[Any, list[dict[str, Any]]] = {
        model: [] for model in (SqlRun, SqlTag, SqlParam, SqlLatestMetric, SqlMetric)
    }

    def run(
        run_id: str, name: str, status: str, start: int, end: int, tags: dict[str, Any]
    ) -> None:
        rows[SqlRun].append(
            {
                "run_uuid": run_id,
                "name": name,
                "source_type": "UNKNOWN",
                "source_name": "",
                "entry_point_name": "",
                "user_id": "bench",
                "status": status,
                "start_time": start,
                "end_time": end,
                "deleted_time": None,
                "source_version": "",
                "lifecycle_stage": "active",
                "artifact_uri": f"{artifacts.as_uri()}/{experiment_id}/{run_id}/artifacts",
                "experiment_id": int(experiment_id),
            }
        )
        tags = {"mlflow.runName": name, "mlflow.user": "bench", **tags}
        rows[SqlTag] += [{"run_uuid": run_id, "key": k, "value": str(v)} for k, v in tags.items()]

    def metric(run_id: str, key: str, value: float, step: int, moment: int, latest: bool) -> None:
        point = {
            "run_uuid": run_id,
            "key": key,
            "value": value,
            "timestamp": moment,
            "step": step,
            "is_nan": False,
        }
        rows[SqlMetric].append(point)
        if latest:
            rows[SqlLatestMetric].append(point)

    parent = uuid.UUID(int=rng.getrandbits(128)).hex
    space = {
        "x": (
            "float -10.0..10.0",
            {
                "name": "FloatDistribution",
                "attributes": {"low": -10.0, "high": 10.0, "log": False, "step": None},
            },
        ),
        "lr": (
            "float 0.0001..1.0 log",
            {
                "name": "FloatDistribution",
                "attributes": {"low": 0.0001, "high": 1.0, "log": True, "step": None},
            },
        ),
        "depth": (
            "int 2..12",
            {
                "name": "IntDistribution",
                "attributes": {"low": 2, "high": 12, "log": False, "step": 1},
            },
        ),
        "booster": (
            "categorical ['gbtree', 'dart', 'gblinear']",
            {
                "name": "CategoricalDistribution",
                "attributes": {"choices": ["gbtree", "dart", "gblinear"]},
            },
        ),
    }
    counts = {state: 0 for state in names.STATES}
    best: tuple[float, int] | None = None
    for number in range(trials):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        start = T0 + number * 100
        params = {
            "x": rng.uniform(-10, 10),
            "lr": 10 ** rng.uniform(-4, 0),
            "depth": rng.randint(2, 12),
            "booster": rng.choice(["gbtree", "dart", "gblinear"]),
        }
        value = (params["x"] - 2) ** 2 + abs(math.log10(params["lr"]) + 2) + 0.1 * params["depth"]
        state = "PRUNED" if rng.random() < 0.3 else ("FAIL" if rng.random() < 0.02 else "COMPLETE")
        counts[state] += 1
        steps = INTERMEDIATE_STEPS if state != "FAIL" else 0
        if state == "PRUNED":
            steps = rng.randint(1, INTERMEDIATE_STEPS - 1)
        run(
            run_id,
            f"trial-{number}",
            names.RUN_STATUS[state],
            start,
            start + 80,
            {
                "flowscope.kind": "trial",
                "flowscope.task": "page-study",
                "flowscope.local_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                names.STUDY_TAG: "page-study",
                names.TRIAL_NUMBER_TAG: number,
                names.TRIAL_STATE_TAG: state,
                "mlflow.parentRunId": parent,
            },
        )
        rows[SqlParam] += [
            {"run_uuid": run_id, "key": k, "value": str(v)} for k, v in params.items()
        ]
        for step in range(steps):
            reported = value * (1 + (INTERMEDIATE_STEPS - step) / INTERMEDIATE_STEPS)
            metric(
                run_id,
                f"{names.INTERMEDIATE_PREFIX}{METRIC}",
                reported,
                step,
                start + step,
                step == steps - 1,
            )
        metric(run_id, names.TRIAL_NUMBER_METRIC, float(number), 0, start + 80, True)
        metric(run_id, names.DURATION_METRIC, 0.08, 0, start + 80, True)
        if state == "COMPLETE":
            metric(run_id, METRIC, value, 0, start + 80, True)
            if best is None or value < best[0]:
                best = (value, number)
    assert best is not None
    run(
        parent,
        "page-study",
        "FINISHED",
        T0 - 1000,
        T0 + trials * 100,
        {
            "flowscope.kind": "tuning",
            "flowscope.task": "page-study",
            names.STUDY_TAG: "page-study",
            names.OBJECTIVE_TAG: METRIC,
            names.BEST_TRIAL_TAG: best[1],
        },
    )
    parent_params = {
        "study_name": "page-study",
        "storage": "bench",
        "sampler": "TPESampler",
        "pruner": "MedianPruner",
        "direction": "minimize",
        **{f"space.{name}": described for name, (described, _) in space.items()},
    }
    rows[SqlParam] += [{"run_uuid": parent, "key": k, "value": v} for k, v in parent_params.items()]
    metric(parent, "best_value", best[0], trials - 1, T0 + trials * 100, True)
    engine = sa.create_engine(uri)
    try:
        with engine.begin() as conn:
            for model, items in rows.items():
                for start in range(0, len(items), 5000):
                    conn.execute(model.__table__.insert(), items[start : start + 5000])
    finally:
        engine.dispose()
    folder = artifacts / experiment_id / parent / "artifacts" / "tuning"
    folder.mkdir(parents=True)
    importances = {"x": 0.8, "lr": 0.12, "depth": 0.05, "booster": 0.03}
    (folder / "importances.json").write_text(
        json.dumps(
            {
                "seed": 0,
                "importances": {"fanova": importances, "ped_anova": importances},
                "errors": {},
            }
        )
    )
    (folder / "search_space.json").write_text(json.dumps({k: v for k, (_, v) in space.items()}))
    return PageStudy(parent, best[1], best[0], counts)


@dataclass
class PageFigure:
    storage: str
    trials: int
    json_s: float
    html_s: float
    json_bytes: int
    html_bytes: int
    correct: bool


def time_page(backend: Backend, trials: int, console: Console) -> PageFigure:
    """Seed a study of ``trials`` trials, then time its page and JSON through the app."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from flowscope.web import create_app

    settings = settings_for(backend, "page")
    started = time.perf_counter()
    study = seed_page_study(backend.mlflow_uri, settings.artifacts_dir / "page", trials)
    seconds = time.perf_counter() - started
    console.print(f"[dim]{backend.name}: seeded a study of {trials:,} trials in {seconds:.1f} s[/]")
    path = f"/studies/{study.run_id}"
    with TestClient(create_app(settings), raise_server_exceptions=True) as client:
        client.get(f"{path}.json")  # the first call pays for connections and caches
        json_s, answer = timed(lambda: client.get(f"{path}.json"))
        html_s, page = timed(lambda: client.get(path))
    data = answer.json()
    correct = (
        answer.status_code == 200
        and page.status_code == 200
        and data["counts"]["total"] == trials
        and all(data["counts"][state] == n for state, n in study.counts.items())
        and data["best"]["number"] == study.best_number
        and data["best"]["value"] == study.best_value
    )
    return PageFigure(
        backend.name, trials, json_s, html_s, len(answer.content), len(page.content), correct
    )


def timed(call: Callable[[], Any], repeats: int = 5) -> tuple[float, Any]:
    """The median seconds of ``repeats`` calls, and the last answer."""
    times, answer = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        answer = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), answer


MODES: dict[str, Callable[[Cell], Outcome]] = {
    "bare": run_bare,
    "mlflow": run_mlflow,
    "flowscope": run_flowscope,
}
LABELS = {"bare": "bare Optuna", "mlflow": "MLflowCallback", "flowscope": "flowscope"}


# -- the report --------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


def print_results(results: list[Result], console: Console) -> bool:
    """The table of every cell and the verdict on each target; True when all are met."""
    from rich.table import Table

    table = Table(title="seconds per trial and tracking overhead per trial (ms)")
    columns = (
        "storage", "n_jobs", "mode", "ms/trial", "overhead", "first 100", "last 100",
        "stored", "orphans", "summary s",
    )  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("storage", "mode") else "right")
    for r in results:
        table.add_row(
            r.storage,
            str(r.n_jobs),
            LABELS[r.mode],
            f"{r.seconds_per_trial * 1000:.1f}",
            _ms(r.overhead_ms),
            _ms(r.first_overhead_ms),
            _ms(r.last_overhead_ms),
            f"{r.stored}/{r.trials}",
            str(r.orphans),
            "" if r.summary_s is None else f"{r.summary_s:.1f}",
        )
    console.print(table)
    met = True
    for ours in (r for r in results if r.mode == "flowscope"):
        peer = next(
            (
                r
                for r in results
                if r.mode == "mlflow" and (r.storage, r.n_jobs) == (ours.storage, ours.n_jobs)
            ),
            None,
        )
        cell = f"{ours.storage}, n_jobs={ours.n_jobs}"
        if peer is not None and ours.overhead_ms is not None and peer.overhead_ms:
            ratio = ours.overhead_ms / peer.overhead_ms
            ok = ratio <= TARGET_OVERHEAD_RATIO
            met &= ok
            console.print(
                f"{cell}: flowscope's overhead {ours.overhead_ms:.1f} ms vs MLflowCallback's "
                f"{peer.overhead_ms:.1f} ms per trial: ratio {ratio:.2f} "
                f"(target ≤ {TARGET_OVERHEAD_RATIO:.2f}) {'met' if ok else 'MISSED'}"
            )
        if ours.first_overhead_ms is not None and ours.last_overhead_ms is not None:
            # flat: the last window within 20% of the first, or within a millisecond of it
            limit = max(ours.first_overhead_ms * (1 + TARGET_FLAT), ours.first_overhead_ms + 1.0)
            ok = ours.last_overhead_ms <= limit
            met &= ok
            console.print(
                f"{cell}: overhead over trials 1-{ours.window}: {ours.first_overhead_ms:.1f} ms, "
                f"over the last {ours.window}: {ours.last_overhead_ms:.1f} ms "
                f"{'flat' if ok else 'GROWS'}"
            )
        ok = ours.complete
        met &= ok
        console.print(
            f"{cell}: {ours.stored}/{ours.trials} trials stored with their parent, "
            f"{ours.orphans} without {'met' if ok else 'MISSED'}"
        )
        if peer is not None:
            console.print(
                f"{cell}: MLflowCallback stored {peer.stored}/{peer.trials} under its parent, "
                f"{peer.orphans} without"
            )
    return met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=1000, help="trials per study (1000)")
    parser.add_argument(
        "--storages", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    parser.add_argument("--n-jobs", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--work-ms", type=float, default=2.0, help="the objective's work (2 ms)")
    parser.add_argument("--reports", type=int, default=5, help="intermediate values per trial")
    parser.add_argument("--page-trials", type=int, default=10_000, help="0 skips the page")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = Console(width=132)
    load = os.getloadavg()
    console.print(
        f"{args.trials:,} trials per study, objective {args.work_ms} ms with {args.reports} "
        f"intermediate values; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    import tempfile

    results: list[Result] = []
    pages: list[PageFigure] = []
    with tempfile.TemporaryDirectory(prefix="flowscope-bench-tuning-") as folder:
        for storage in args.storages:
            with open_backend(storage, Path(folder) / storage) as backend:
                results.extend(run_cells(backend, args, console))
                if args.page_trials and storage == "sqlite":
                    pages.append(time_page(backend, args.page_trials, console))
    met = print_results(results, console)
    for page in pages:
        ok = page.correct and max(page.json_s, page.html_s) <= TARGET_PAGE_S
        met &= ok
        console.print(
            f"study page at {page.trials:,} trials on {page.storage}: "
            f"JSON {page.json_s * 1000:.0f} ms ({page.json_bytes:,} bytes), "
            f"HTML {page.html_s * 1000:.0f} ms ({page.html_bytes:,} bytes), "
            f"target ≤ {TARGET_PAGE_S:.0f} s: "
            f"{'met' if ok else 'MISSED'}{'' if page.correct else ' (WRONG ANSWER)'}"
        )
    if args.json:
        from dataclasses import asdict

        figures = {"results": [asdict(r) for r in results], "pages": [asdict(p) for p in pages]}
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
