"""Dashboard queries, side by side: flowscope's run store against the plain MlflowClient calls
a user would make for the same answers.

Run from the repository root (either form)::

    .venv/bin/python bench/dashboard.py
    .venv/bin/python -m bench.dashboard --runs 1000 --stores sqlite
    .venv/bin/python bench/dashboard.py --big        # adds 100,000 runs on PostgreSQL

Each store (a SQLite file in a temporary folder, and a throwaway PostgreSQL database dropped
at the end) gets one experiment per size, each run with 10 params, 10 metrics and 3 tags.
The runs are written by bulk inserts into MLflow's own tables (COPY on PostgreSQL), with the
rows MLflow itself writes: logging 10,000 runs through MLflow's API would take most of the
budget, and the queries only read. Then, for each size, the bench times:

- first page: 100 runs sorted by ``metrics.m0 DESC`` (``search_runs(max_results=100)``);
- summary: run count and count/mean/min/max of ``m0`` (``mlflow.search_runs`` into pandas);
- best: the best ``m0`` among runs with ``metrics.m1 >= 0.5`` (``search_runs`` filtered and
  ordered by ``m0 DESC, start_time ASC``, 4 results);
- compare: 10 full runs by id (``search_runs`` with ``attributes.run_id IN (...)``),

checks that both give the same answer, and prints both times and their ratio.
"""

from __future__ import annotations

import os
import sys

# Run as ``python bench/dashboard.py``, this file's folder is sys.path[0], and its neighbour
# bench/logging.py would shadow the standard ``logging`` module; flowscope and bench are
# imported from the repository root instead, whatever the working folder.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import logging
import math
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import sqlalchemy as sa
from mlflow.entities import Run as MlflowRun
from mlflow.store.tracking.dbmodels.models import (
    SqlLatestMetric,
    SqlMetric,
    SqlParam,
    SqlRun,
    SqlTag,
)
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

from flowscope.analysis.best import BestRun
from flowscope.analysis.query import RunPage, SqlRunStore, run_row
from flowscope.config import Settings, load_settings

PG_ADMIN_DSN = os.environ.get("FLOWSCOPE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = 1_700_000_000_000
PARAMS = 10
METRICS = 10
PAGE = 100
SORT = ["metrics.m0 DESC"]
CONSTRAINT = "metrics.m1 >= 0.5"
TARGETS = {"first page": 0.3, "summary": 1.0, "best": 1.0}  # seconds, at 10,000 runs
FLOWSCOPE_TIME_BUDGET = 1.0  # seconds of repeats per fast measurement
MLFLOW_TIME_BUDGET = 10.0  # the slow side is repeated only while it stays under this


@dataclass
class Figure:
    store: str
    runs: int
    query: str
    flowscope_s: float
    mlflow_s: float
    agree: bool

    @property
    def ratio(self) -> float:
        return self.mlflow_s / self.flowscope_s if self.flowscope_s else math.inf


# --- seeding ---------------------------------------------------------------------------


def empty_rows() -> dict[Any, list[dict[str, Any]]]:
    """The rows to insert, by MLflow table, in the order they are inserted."""
    return {SqlRun: [], SqlTag: [], SqlParam: [], SqlLatestMetric: [], SqlMetric: []}


def add_run(
    rows: dict[Any, list[dict[str, Any]]],
    *,
    experiment_id: str,
    run_id: str,
    name: str,
    user: str,
    start: int,
    end: int,
    tags: dict[str, str],
    params: dict[str, str],
    metrics: dict[str, float],
    artifact_uri: str | None = None,
    status: str = "FINISHED",
) -> None:
    """Add the rows MLflow writes for one ended run: its ``runs`` row, MLflow's runName and
    user tags then ``tags``, ``params``, and each metric as one point (NaN as MLflow keeps
    it: 0 with ``is_nan``), logged 400 ms after the start."""
    rows[SqlRun].append(
        {
            "run_uuid": run_id,
            "name": name,
            "source_type": "LOCAL",
            "source_name": "bench.py",
            "entry_point_name": "",
            "user_id": user,
            "status": status,
            "start_time": start,
            "end_time": end,
            "deleted_time": None,
            "source_version": "",
            "lifecycle_stage": "active",
            "artifact_uri": artifact_uri or f"file:///bench/{run_id}/artifacts",
            "experiment_id": int(experiment_id),
        }
    )
    every_tag = {"mlflow.runName": name, "mlflow.user": user, **tags}
    rows[SqlTag] += [{"run_uuid": run_id, "key": k, "value": v} for k, v in every_tag.items()]
    rows[SqlParam] += [{"run_uuid": run_id, "key": k, "value": v} for k, v in params.items()]
    for key, value in metrics.items():
        nan = math.isnan(value)
        point = {
            "run_uuid": run_id,
            "key": key,
            "value": 0.0 if nan else value,
            "timestamp": start + 400,
            "step": 0,
            "is_nan": nan,
        }
        rows[SqlLatestMetric].append(point)
        rows[SqlMetric].append(point)


def make_rows(experiment_id: str, runs: int, seed: int) -> dict[Any, list[dict[str, Any]]]:
    """The rows MLflow writes for ``runs`` finished runs: 10 params, 10 metrics (one point
    each; 2% of runs lack m0 and 1% have NaN), 3 tags plus MLflow's runName and user."""
    rng = random.Random(seed)
    rows = empty_rows()
    for i in range(runs):
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        start = T0 + i * 1000
        end = start + 500 + rng.randrange(500)
        params = {f"p{j}": str(rng.choice([0.1, 0.01, 3, 10, 64])) for j in range(PARAMS)}
        metrics = {}
        for j in range(METRICS):
            if j == 0 and rng.random() < 0.02:
                continue
            nan = j == 0 and rng.random() < 0.01
            metrics[f"m{j}"] = math.nan if nan else round(rng.random(), 4)  # 4 digits: ties
        add_run(
            rows,
            experiment_id=experiment_id,
            run_id=run_id,
            name=f"run-{i}",
            user=f"user{i % 5}",
            start=start,
            end=end,
            tags={
                "flowscope.kind": "inference" if i % 10 == 9 else "training",
                "team": f"team-{i % 4}",
                "dataset": f"set-{i % 7}",
            },
            params=params,
            metrics=metrics,
        )
    return rows


def insert_rows(engine: sa.Engine, rows: dict[Any, list[dict[str, Any]]]) -> None:
    if engine.dialect.name == "postgresql":
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            for model, items in rows.items():
                columns = list(items[0])
                names = ", ".join(columns)
                with cursor.copy(f"COPY {model.__tablename__} ({names}) FROM STDIN") as copy:
                    for item in items:
                        copy.write_row([item[c] for c in columns])
            connection.commit()
        finally:
            connection.close()
        vacuum_analyze(engine)
        return
    with engine.begin() as conn:
        for model, items in rows.items():
            conn.execute(model.__table__.insert(), items)


def vacuum_analyze(engine: sa.Engine) -> None:
    """``VACUUM ANALYZE`` a PostgreSQL database, as autovacuum does some time after a bulk
    load: the planner's statistics, and the visibility map that index-only scans need.
    VACUUM cannot run inside a transaction, hence the autocommit connection."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE"))


@dataclass
class Store:
    name: str
    uri: str
    settings: Settings
    experiments: dict[int, str]  # runs -> experiment id
    seconds_to_seed: float


RowMaker = Callable[[str, int, int], dict[Any, list[dict[str, Any]]]]


@contextmanager
def open_store(
    name: str, root: Path, sizes: Sequence[int], console: Console, make: RowMaker = make_rows
) -> Iterator[Store]:
    """A fresh store (``sqlite``: a file under ``root``; ``postgres``: a throwaway database,
    dropped on leaving) with one experiment ``bench-<n>`` per size, its runs the rows
    ``make(experiment_id, n, seed=n)`` returns, bulk inserted."""
    database = None
    if name == "sqlite":
        uri = f"sqlite:///{root / 'mlflow.db'}"
    else:
        import psycopg

        database = f"flowscope_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"')
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        uri = f"{base}/{database}"
    try:
        settings = load_settings(
            tracking_uri=uri,
            artifacts_dir=root / "artifacts",
            journal_dir=root / "journal",
            sync_on_start=False,
        )
        client = MlflowClient(uri)  # creates MLflow's tables, as any first use does
        engine = sa.create_engine(uri)
        started = time.perf_counter()
        experiments = {}
        for runs in sizes:
            experiment_id = client.create_experiment(
                f"bench-{runs}", artifact_location=(root / "artifacts").as_uri()
            )
            insert_rows(engine, make(experiment_id, runs, runs))
            experiments[runs] = experiment_id
        engine.dispose()
        seconds = time.perf_counter() - started
        console.print(
            f"{name}: seeded {', '.join(f'{n:,}' for n in sizes)} runs by bulk insert "
            f"in {seconds:.1f} s"
        )
        yield Store(name, uri, settings, experiments, seconds)
    finally:
        if database is not None:
            import psycopg

            with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


# --- timing ----------------------------------------------------------------------------


def timed(call: Callable[[], Any], budget: float) -> tuple[float, Any]:
    """Median seconds of repeated calls (at least one, up to 7, while within ``budget``)."""
    times: list[float] = []
    result = None
    while len(times) < 7 and (not times or sum(times) + times[-1] <= budget):
        started = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def same_page(page: RunPage, found: Sequence[MlflowRun]) -> bool:
    return [row["run_id"] for row in page.rows] == [run.info.run_id for run in found]


def pandas_summary(experiment: str, max_results: int = 100_000) -> dict[str, Any]:
    """What a user computes from ``mlflow.search_runs``: count, kinds, m0's statistics."""
    frame = mlflow.search_runs([experiment], max_results=max_results)
    values = frame["metrics.m0"]
    kinds = frame["tags.flowscope.kind"].fillna("training").value_counts()
    return {
        "total": len(frame),
        "by_kind": {str(kind): int(n) for kind, n in sorted(kinds.items())},
        "count": int(values.count()),
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def same_summary(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    stats = ours["metric"]
    return (
        ours["total"] == theirs["total"]
        and ours["by_kind"] == theirs["by_kind"]
        and stats["count"] == theirs["count"]
        and all(close(stats[key], theirs[key]) for key in ("mean", "min", "max"))
    )


def mlflow_best(client: MlflowClient, experiment: str) -> list[MlflowRun]:
    """The best run and three runners-up by ``search_runs``, as a user would ask for them."""
    return list(
        client.search_runs(
            [experiment],
            filter_string=CONSTRAINT,
            order_by=[*SORT, "attributes.start_time ASC"],  # best_run's tie-break
            max_results=4,
        )
    )


def same_best(best: BestRun, found: Sequence[MlflowRun]) -> bool:
    return [row["run_id"] for row in best.ranking] == [run.info.run_id for run in found] and (
        best.value == found[0].data.metrics["m0"]
    )


def same_rows(rows: Sequence[dict[str, Any]], found: Sequence[MlflowRun]) -> bool:
    theirs = {run.info.run_id: comparable(run_row(run)) for run in found}
    return {row["run_id"]: comparable(row) for row in rows} == theirs


def bench_size(store: Store, runs: int, flowscope: SqlRunStore) -> list[Figure]:
    client = MlflowClient(store.uri)
    experiment = store.experiments[runs]
    figures = []

    def add(
        query: str,
        ours: Callable[[], Any],
        theirs: Callable[[], Any],
        same: Callable[[Any, Any], bool],
    ) -> None:
        ours()  # the first call pays for connections and the planner, on neither side timed
        theirs_s, their_answer = timed(theirs, MLFLOW_TIME_BUDGET)
        ours_s, our_answer = timed(ours, FLOWSCOPE_TIME_BUDGET)
        figures.append(
            Figure(store.name, runs, query, ours_s, theirs_s, same(our_answer, their_answer))
        )

    add(
        "first page",
        lambda: flowscope.search([experiment], order_by=SORT, page_size=PAGE),
        lambda: client.search_runs([experiment], order_by=SORT, max_results=PAGE),
        same_page,
    )
    add(
        "summary",
        lambda: flowscope.summary([experiment], metric="m0"),
        lambda: pandas_summary(experiment),
        same_summary,
    )
    add(
        "best",
        lambda: flowscope.best(
            [experiment], metric="m0", direction="max", kind=None, filter_string=CONSTRAINT
        ),
        lambda: mlflow_best(client, experiment),
        same_best,
    )
    listed = flowscope.search([experiment], page_size=min(runs, 1000)).rows
    some = [row["run_id"] for row in listed[:: max(1, len(listed) // 10)]][:10]
    quoted = ", ".join(f"'{run_id}'" for run_id in some)
    add(
        "compare 10",
        lambda: flowscope.runs(some),
        lambda: client.search_runs([experiment], filter_string=f"attributes.run_id IN ({quoted})"),
        same_rows,
    )
    return figures


def render(figures: Sequence[Figure]) -> Table:
    table = Table(title="dashboard queries: flowscope SqlRunStore vs plain MlflowClient")
    for column in ("store", "runs", "query", "flowscope", "MLflow", "ratio", "same answer"):
        table.add_column(column, justify="left" if column in ("store", "query") else "right")
    for figure in figures:
        table.add_row(
            figure.store,
            f"{figure.runs:,}",
            figure.query,
            f"{figure.flowscope_s * 1000:,.1f} ms",
            f"{figure.mlflow_s * 1000:,.0f} ms",
            f"{figure.ratio:,.0f}x" if figure.ratio >= 10 else f"{figure.ratio:.1f}x",
            "yes" if figure.agree else "NO",
        )
    return table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="1000,10000", help="comma-separated experiment sizes")
    parser.add_argument("--stores", default="sqlite,postgres", help="sqlite and/or postgres")
    parser.add_argument("--big", action="store_true", help="add 100,000 runs on PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    check_sizes_and_stores(parser, args, fewest_runs=10)
    return args


def check_sizes_and_stores(
    parser: argparse.ArgumentParser, args: argparse.Namespace, fewest_runs: int
) -> None:
    """Turn ``--runs`` into a list of sizes (each at least ``fewest_runs``), ``--stores``
    into a list of store names, and ``--json`` into an absolute path; a bad one is a usage
    error."""
    try:
        args.runs = [int(n) for n in args.runs.split(",") if n.strip()]
    except ValueError:
        parser.error(f"--runs takes comma-separated numbers, not {args.runs!r}")
    args.stores = [name.strip() for name in args.stores.split(",") if name.strip()]
    unknown = sorted(set(args.stores) - {"sqlite", "postgres"})
    if unknown or not args.stores:
        parser.error(f"--stores takes sqlite and/or postgres, not {', '.join(unknown) or 'none'}")
    if not args.runs or min(args.runs) < fewest_runs:
        parser.error(f"--runs needs sizes of {fewest_runs} runs or more")
    if args.json is not None:
        args.json = args.json.resolve()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("mlflow", "alembic"):  # store creation and migrations are noise here
        logging.getLogger(name).setLevel(logging.WARNING)
    console = Console(width=None if sys.stdout.isatty() else 120)
    figures: list[Figure] = []
    opened: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="flowscope-bench-") as tmp:
        for name in args.stores:
            sizes = list(args.runs)
            if args.big and name == "postgres":
                sizes.append(100_000)
            with open_store(name, Path(tmp) / name, sizes, console) as store:
                mlflow.set_tracking_uri(store.uri)
                started = time.perf_counter()
                flowscope = SqlRunStore(store.settings)  # first use: creates its index
                opened[name] = time.perf_counter() - started
                try:
                    for runs in sizes:
                        figures += bench_size(store, runs, flowscope)
                        console.print(f"{name}: {runs:,} runs done")
                finally:
                    flowscope.close()
    console.print(render(figures))
    console.print(
        "first use (index creation included): "
        + ", ".join(f"{name} {seconds * 1000:,.0f} ms" for name, seconds in opened.items())
    )
    for figure in figures:
        target = TARGETS.get(figure.query)
        if target is not None and figure.runs == 10_000 and figure.flowscope_s > target:
            console.print(
                f"target missed: {figure.store} {figure.query} at 10,000 runs took "
                f"{figure.flowscope_s * 1000:,.0f} ms (target {target * 1000:,.0f} ms)"
            )
    if args.json is not None:
        args.json.write_text(
            json.dumps([{**asdict(f), "ratio": f.ratio} for f in figures], indent=2)
        )
    return 0 if all(figure.agree for figure in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
