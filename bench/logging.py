"""Metric logging, side by side: the same workload through plain MLflow and through flowscope.

Run from the repository root (either form)::

    .venv/bin/python bench/logging.py
    .venv/bin/python -m bench.logging --stores sqlite --points 50000 --json figures.json

Each store (a fresh SQLite file, and a local ``mlflow server`` backed by SQLite) takes every
mode in turn, each in its own run, working folder and journal folder. For each mode the
bench prints how long the training loop was blocked per point and how many points per
second reached the store, from the first log call until the last point is stored, then
checks that every point is stored exactly once.
"""

from __future__ import annotations

import os
import sys

# Run as ``python bench/logging.py``, this file's folder is sys.path[0] and this very file
# would shadow the standard ``logging`` module for everything imported below.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
# tests.servers (the mlflow server helper) is imported from the repository root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import logging
import math
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric
from mlflow.environment_variables import (
    MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS,
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION,
    MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT,
)
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table
from tests.servers import MlflowServer

import flowscope
from flowscope.config import load_settings

TARGET_BLOCKED_US = 20.0  # flowscope's blocked time per point, at most
TARGET_VS_ASYNC = 3.0  # flowscope's throughput over MLflow's best async mode, at least
TARGET_VS_CEILING = 2 / 3  # flowscope's throughput over raw log_batch, at least
BATCH_SIZE = 1000  # MLflow's limit of metrics per log_batch call
DELIVERY_TIMEOUT = 600.0


# -- the workload ----------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    step: int
    timestamp: int
    metrics: dict[str, float]


@dataclass(frozen=True)
class Workload:
    """Every mode logs these points, with these values and timestamps."""

    steps: tuple[Step, ...]

    @property
    def points(self) -> int:
        return sum(len(step.metrics) for step in self.steps)

    def head(self, points: int) -> Workload:
        """The first ``points`` points, rounded up to whole steps."""
        taken: list[Step] = []
        count = 0
        for step in self.steps:
            if count >= points:
                break
            taken.append(step)
            count += len(step.metrics)
        return Workload(tuple(taken))

    def expected_counts(self) -> dict[tuple[str, int], int]:
        return {(key, step.step): 1 for step in self.steps for key in step.metrics}

    def as_metrics(self) -> list[Metric]:
        return [
            Metric(key, value, step.timestamp, step.step)
            for step in self.steps
            for key, value in step.metrics.items()
        ]


def make_workload(points: int, per_step: int) -> Workload:
    """``points`` points of ``per_step`` metrics a step, shaped like falling losses."""
    start = int(time.time() * 1000)
    keys = [f"metric_{index:02d}" for index in range(per_step)]
    steps = []
    for step in range(math.ceil(points / per_step)):
        count = min(per_step, points - step * per_step)
        metrics = {
            key: round(math.exp(-step / 500) + 0.01 * index, 9)
            for index, key in enumerate(keys[:count])
        }
        steps.append(Step(step, start + step, metrics))
    return Workload(tuple(steps))


# -- stores ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Store:
    name: str
    uri: str
    database: Path  # the SQLite file behind the store, where points are counted

    def experiment_id(self, name: str, artifacts: Path) -> str:
        """A new experiment; artifacts go to ``artifacts`` unless a server decides."""
        location = None if self.name == "server" else artifacts.as_uri()
        return MlflowClient(self.uri).create_experiment(name, artifact_location=location)


@contextmanager
def mlflow_environment(variable: Any, value: object | None) -> Iterator[None]:
    """Set one of MLflow's environment variables (None: unset) for a block.

    MLflow reads async buffering, job execution and URL printing from the environment only.
    """
    previous = variable.get_raw()
    if value is None:
        variable.unset()
    else:
        variable.set(value)
    try:
        yield
    finally:
        if previous is None:
            variable.unset()
        else:
            variable.set(previous)


@contextmanager
def open_store(name: str, root: Path) -> Iterator[Store]:
    """A fresh store of kind ``name`` (``sqlite`` or ``server``) under ``root``, warmed up."""
    root.mkdir(parents=True)
    if name == "sqlite":
        database = root / "mlflow.db"
        store = Store(name, f"sqlite:///{database}", database)
        warm_up(store, root)
        yield store
        return
    # `mlflow server`'s own default of 4 workers, as a team runs it.
    server = MlflowServer(root / "server", workers=4)
    # The job runner's eight processes take ~15 s of CPU starting up, which on a small
    # machine would land on whichever mode runs first; metric logging does not use them.
    with mlflow_environment(MLFLOW_SERVER_ENABLE_JOB_EXECUTION, False):
        server.start()
    try:
        store = Store(name, server.url, server.root / "mlflow.db")
        warm_up(store, root)
        yield store
    finally:
        server.stop()


def warm_up(store: Store, root: Path) -> None:
    """Create the schema and go once through every code path, so no mode pays for imports."""
    workload = make_workload(100, 10)
    for mode in MODES:
        run_mode(mode, store, workload, root, tag="warm-up")


def count_points(database: Path, run_id: str) -> dict[tuple[str, int], int]:
    """How many times each (key, step) of the run is stored, from the store's own table."""
    query = "SELECT key, step, COUNT(*) FROM metrics WHERE run_uuid = ? GROUP BY key, step"
    with closing(sqlite3.connect(database)) as connection:
        return {(key, step): count for key, step, count in connection.execute(query, (run_id,))}


# -- modes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    """One mode's turn: where to log, what, and a fresh folder of its own."""

    store: Store
    workload: Workload
    experiment: str
    workdir: Path


@dataclass(frozen=True)
class Timing:
    run_id: str
    blocked_s: float | None  # None: the mode has no training loop
    delivered_s: float | None  # None: not everything was delivered


@contextmanager
def _mlflow_run(trial: Trial) -> Iterator[str]:
    trial.store.experiment_id(trial.experiment, trial.workdir / "mlartifacts")
    mlflow.set_tracking_uri(trial.store.uri)
    mlflow.set_experiment(trial.experiment)
    with mlflow.start_run(run_name=trial.experiment) as run:
        yield run.info.run_id


def mlflow_log_metric(trial: Trial) -> Timing:
    with _mlflow_run(trial) as run_id:
        start = time.perf_counter()
        for step in trial.workload.steps:
            for key, value in step.metrics.items():
                mlflow.log_metric(key, value, step=step.step, timestamp=step.timestamp)
        elapsed = time.perf_counter() - start
    return Timing(run_id, elapsed, elapsed)


def mlflow_log_metrics(trial: Trial) -> Timing:
    with _mlflow_run(trial) as run_id:
        start = time.perf_counter()
        for step in trial.workload.steps:
            mlflow.log_metrics(step.metrics, step=step.step, timestamp=step.timestamp)
        elapsed = time.perf_counter() - start
    return Timing(run_id, elapsed, elapsed)


def mlflow_async(trial: Trial, *, buffering: int | None) -> Timing:
    # Ending the run shuts MLflow's async queue down, so each mode starts a fresh one.
    buffering_env = mlflow_environment(MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS, buffering)
    with buffering_env, _mlflow_run(trial) as run_id:
        start = time.perf_counter()
        for step in trial.workload.steps:
            mlflow.log_metrics(
                step.metrics, step=step.step, timestamp=step.timestamp, synchronous=False
            )
        blocked = time.perf_counter() - start
        mlflow.flush_async_logging()
        delivered = time.perf_counter() - start
    return Timing(run_id, blocked, delivered)


def flowscope_run(trial: Trial) -> Timing:
    settings = load_settings(
        tracking_uri=trial.store.uri,
        artifacts_dir=trial.workdir / "mlartifacts",
        journal_dir=trial.workdir / "journal",
        autolog=False,
        sync_on_start=False,
        start_timeout=60.0,
        flush_timeout=DELIVERY_TIMEOUT,
    )
    run = flowscope.start_run(trial.experiment, run_name=trial.experiment, settings=settings)
    run_id = run.run_id
    if run_id is None:  # start_run waited start_timeout for the store in vain
        raise RuntimeError(f"flowscope could not create its run in {trial.store.uri}")
    start = time.perf_counter()
    for step in trial.workload.steps:
        run.log_metrics(step.metrics, step=step.step, timestamp=step.timestamp)
    blocked = time.perf_counter() - start
    delivered = run.end(timeout=DELIVERY_TIMEOUT)
    elapsed = time.perf_counter() - start
    return Timing(run_id, blocked, elapsed if delivered else None)


def raw_log_batch(trial: Trial) -> Timing:
    client = MlflowClient(trial.store.uri)
    experiment_id = trial.store.experiment_id(trial.experiment, trial.workdir / "mlartifacts")
    run_id = client.create_run(experiment_id, run_name=trial.experiment).info.run_id
    metrics = trial.workload.as_metrics()
    batches = [metrics[index : index + BATCH_SIZE] for index in range(0, len(metrics), BATCH_SIZE)]
    start = time.perf_counter()
    for batch in batches:
        client.log_batch(run_id, metrics=batch)
    elapsed = time.perf_counter() - start
    client.set_terminated(run_id)
    return Timing(run_id, None, elapsed)


@dataclass(frozen=True)
class Mode:
    key: str
    label: str
    run: Callable[[Trial], Timing]
    kind: str = "mlflow"  # "mlflow", "async", "flowscope" or "ceiling"
    slow: bool = False  # runs on the first --slow-points points only


MODES = (
    Mode("log_metric", "mlflow.log_metric per point", mlflow_log_metric, slow=True),
    Mode("log_metrics", "mlflow.log_metrics per step", mlflow_log_metrics),
    Mode(
        "async_1s", "mlflow async, 1 s buffering", partial(mlflow_async, buffering=1), kind="async"
    ),
    Mode("async", "mlflow async, unbuffered", partial(mlflow_async, buffering=None), kind="async"),
    Mode("flowscope", "flowscope Run.log_metrics", flowscope_run, kind="flowscope"),
    Mode("log_batch", f"MlflowClient.log_batch ×{BATCH_SIZE}", raw_log_batch, kind="ceiling"),
)


# -- running and reporting -------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    store: str
    mode: str
    label: str
    kind: str
    points: int
    blocked_s: float | None
    delivered_s: float | None
    exactly_once: bool

    @property
    def blocked_us(self) -> float | None:
        return None if self.blocked_s is None else self.blocked_s / self.points * 1e6

    @property
    def points_per_s(self) -> float | None:
        return None if self.delivered_s is None else self.points / self.delivered_s

    def as_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "blocked_us_per_point": self.blocked_us,
            "points_per_s": self.points_per_s,
        }


def run_mode(mode: Mode, store: Store, workload: Workload, root: Path, tag: str = "") -> Result:
    """Run one mode in a fresh run, working folder and journal, then count what is stored."""
    experiment = f"bench-{mode.key}{'-' + tag if tag else ''}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{store.name}-{experiment}-", dir=root))
    os.chdir(workdir)  # whatever MLflow writes next to the caller lands here
    timing = mode.run(Trial(store, workload, experiment, workdir))
    stored = count_points(store.database, timing.run_id)
    return Result(
        store=store.name,
        mode=mode.key,
        label=mode.label,
        kind=mode.kind,
        points=workload.points,
        blocked_s=timing.blocked_s,
        delivered_s=timing.delivered_s,
        exactly_once=stored == workload.expected_counts(),
    )


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _figure(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def render_table(store: str, results: Sequence[Result], slow_points: int) -> Table:
    flowscope_rate = next((r.points_per_s for r in results if r.kind == "flowscope"), None)
    table = Table(
        title=f"{store}: metric logging",
        caption=f"modes marked * run on the first {slow_points:,} points only",
    )
    table.add_column("mode")
    table.add_column("points", justify="right")
    table.add_column("blocked µs/point", justify="right")
    table.add_column("delivered points/s", justify="right")
    table.add_column("flowscope ×", justify="right")
    table.add_column("exactly once")
    for result in results:
        slow = next(mode.slow for mode in MODES if mode.key == result.mode)
        table.add_row(
            result.label + (" *" if slow else ""),
            f"{result.points:,}",
            _figure(result.blocked_us, ",.1f"),
            _figure(result.points_per_s, ",.0f"),
            _figure(_ratio(flowscope_rate, result.points_per_s), ".2f"),
            "[green]yes[/]" if result.exactly_once else "[red]no[/]",
        )
    return table


def summarise(results: Sequence[Result]) -> dict[str, Any]:
    """flowscope's figures against the targets, for one store."""
    ours = next(r for r in results if r.kind == "flowscope")
    best_async = max((r for r in results if r.kind == "async"), key=lambda r: r.points_per_s or 0.0)
    ceiling = next(r for r in results if r.kind == "ceiling")
    vs_async = _ratio(ours.points_per_s, best_async.points_per_s)
    vs_ceiling = _ratio(ours.points_per_s, ceiling.points_per_s)
    return {
        "blocked_us_per_point": ours.blocked_us,
        "points_per_s": ours.points_per_s,
        "best_async_mode": best_async.mode,
        "best_async_label": best_async.label,
        "vs_best_async": vs_async,
        "vs_ceiling": vs_ceiling,
        "exactly_once": ours.exactly_once,
        "blocked_met": ours.blocked_us is not None and ours.blocked_us <= TARGET_BLOCKED_US,
        "vs_async_met": vs_async is not None and vs_async >= TARGET_VS_ASYNC,
        "vs_ceiling_met": vs_ceiling is not None and vs_ceiling >= TARGET_VS_CEILING,
    }


def summary_line(store: str, summary: dict[str, Any]) -> str:
    def verdict(met: bool) -> str:
        return "[green]met[/]" if met else "[red]missed[/]"

    return (
        f"[bold]{store}[/]: flowscope blocks {_figure(summary['blocked_us_per_point'], '.1f')} "
        f"µs/point (target ≤ {TARGET_BLOCKED_US:.0f}: {verdict(summary['blocked_met'])}); "
        f"delivers {_figure(summary['points_per_s'], ',.0f')} points/s = "
        f"{_figure(summary['vs_best_async'], '.2f')}× MLflow's best async mode "
        f"({summary['best_async_label']}; target ≥ {TARGET_VS_ASYNC:.0f}×: "
        f"{verdict(summary['vs_async_met'])}) and {_figure(summary['vs_ceiling'], '.2f')}× "
        f"the raw log_batch ceiling (target ≥ {TARGET_VS_CEILING:.2f}×: "
        f"{verdict(summary['vs_ceiling_met'])}); exactly once: "
        f"{'yes' if summary['exactly_once'] else '[red]no[/]'}"
    )


def bench_store(
    name: str, root: Path, workload: Workload, slow_points: int, console: Console
) -> list[Result]:
    slow_workload = workload.head(slow_points)
    results = []
    with console.status(f"{name}: starting the store"), open_store(name, root / name) as store:
        for mode in MODES:
            with console.status(f"{name}: {mode.label}"):
                result = run_mode(mode, store, slow_workload if mode.slow else workload, root)
            console.print(f"[dim]{name}: {mode.label}: {_figure(result.delivered_s, '.1f')} s[/]")
            results.append(result)
    return results


@contextmanager
def scratch_folder() -> Iterator[Path]:
    """A temporary folder for stores and working folders; the working folder is restored."""
    home = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="flowscope-bench-") as tmp:
        try:
            yield Path(tmp)
        finally:
            os.chdir(home)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20_000, help="points per mode")
    parser.add_argument("--metrics-per-step", type=int, default=10, help="metrics a step")
    parser.add_argument(
        "--slow-points",
        type=int,
        default=1_000,
        help="points for the synchronous MLflow modes, which take milliseconds a call",
    )
    parser.add_argument("--stores", default="sqlite,server", help="comma-separated: sqlite, server")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    args.stores = [name.strip() for name in args.stores.split(",") if name.strip()]
    unknown = sorted(set(args.stores) - {"sqlite", "server"})
    if unknown or not args.stores:
        parser.error(f"--stores takes sqlite and/or server, not {', '.join(unknown) or 'nothing'}")
    if min(args.points, args.metrics_per_step, args.slow_points) < 1:
        parser.error("--points, --metrics-per-step and --slow-points must be positive")
    if args.json is not None:
        args.json = args.json.resolve()  # the bench changes folder as it goes
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("mlflow", "alembic"):  # store creation and migrations are noise here
        logging.getLogger(name).setLevel(logging.WARNING)
    console = Console(width=None if sys.stdout.isatty() else 120)
    workload = make_workload(args.points, args.metrics_per_step)
    slow_points = workload.head(args.slow_points).points
    console.print(
        f"workload: {workload.points:,} points, {args.metrics_per_step} metrics a step, "
        f"{len(workload.steps):,} steps; mlflow.log_metric per point: the first "
        f"{slow_points:,} points only"
    )
    report: dict[str, Any] = {"config": {**vars(args), "json": str(args.json)}, "stores": {}}
    with scratch_folder() as root, mlflow_environment(MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT, True):
        for name in args.stores:
            results = bench_store(name, root, workload, slow_points, console)
            console.print(render_table(name, results, slow_points))
            report["stores"][name] = {
                "results": [result.as_json() for result in results],
                "summary": summarise(results),
            }
    for name, figures in report["stores"].items():
        console.print(summary_line(name, figures["summary"]))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
        console.print(f"figures written to {args.json}")
    # Missed targets are figures to read; a lost or doubled point is a failure.
    lost = [
        name for name, figures in report["stores"].items() if not figures["summary"]["exactly_once"]
    ]
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
