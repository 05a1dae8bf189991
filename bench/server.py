"""Through a tracking server, side by side: ``mlflow server`` with MLflow's own clients
against ``flowscope server`` with flowscope's SDK and dashboard, each on a fresh database of
the same PostgreSQL. Three parts, each chosen with ``--part`` (all by default).

Run from the repository root (either form)::

    .venv/bin/python bench/server.py
    .venv/bin/python -m bench.server --part ingest writers --points 20000 --workers 1 4
    .venv/bin/python -m bench.server --part dashboard --runs 5000

- ingest: ``--points`` points (10 metrics a step) in one run, through ``mlflow server`` with
  MLflow's buffered async logging and through ``flowscope server`` with flowscope's SDK
  (which finds the server's bulk ingest endpoint), with each of ``--workers`` server
  workers. Timed from the first log call until every point is in the store. Then the same
  through ``flowscope server --auth``, the SDK sending a write token of a user of its own
  in ``MLFLOW_TRACKING_TOKEN``, against the figure without auth (``--auth-pairs`` more
  pairs, off and on in alternating order, when the machine's load makes one pair noisy):
  the target is at most 5% lower throughput with auth on.
- writers: the same with ``--writers`` processes logging at once into one server, each its
  own run, ``--points`` points between them (:mod:`tests.writers`: a fresh interpreter forks
  them, and they start logging together at a barrier once each has its run). Timed from the
  barrier until the last one is done, its run ended with every point delivered.

  Both print the points stored per second (a lost point not counted), the ratio, and
  whether PostgreSQL holds every point of each run exactly once, counted in its ``metrics``
  table, else how many it lacks and holds twice. MLflow's async logging drops a batch the
  server refuses and logs an error: a 1-worker ``mlflow server`` under 16 writers runs out
  of its database connection pool (5 and 10 overflow, 30 s wait) and refuses some.
- dashboard: ``--runs`` runs (10 params, 10 metrics, 3 tags each) bulk-copied into MLflow's
  tables of a fresh database (:mod:`bench.dashboard`'s seeding, then ``VACUUM ANALYZE`` as
  autovacuum would do), one ``flowscope server`` with ``--dashboard-workers`` workers on it,
  and the dashboard's JSON over HTTP against the ``MlflowClient`` calls a user would make for
  the same answers through the same server:

  - first page, 100 runs by ``metrics.m0 DESC``: ``GET /flowscope/api/experiments/ID/runs``
    against ``search_runs(max_results=100)``;
  - summary, count/mean/min/max of ``m0`` and the runs by kind:
    ``GET /flowscope/api/experiments/ID/summary`` against ``mlflow.search_runs`` of every
    run into pandas (slow: once, without a warm-up);
  - best ``m0`` among ``metrics.m1 >= 0.5`` with three runners-up:
    ``GET /flowscope/api/experiments/ID/best?counts=false`` against ``search_runs``
    filtered and ordered, 4 runs: the same question. flowscope's default answer also
    counts the runs considered and those without ``m0``, which ``search_runs`` does not
    give; it is timed beside, with no peer.

  Also timed, with no peer: the whole runs page's JSON twin
  (``/flowscope/experiments/ID.json``: the page, the summary, the tab counts, the
  experiment's keys and its studies) and the best-run page's (``.../best.json``, which also
  looks for the held-out predictions of the paired test).

  Each call is first made once untimed (connections, the planner, the first use of
  flowscope's indexes), then the median of up to 7 repeats within a time budget. It prints
  both times, the ratio, whether the answers agree, and the targets: at most 200 ms and at
  least 5 times faster than MLflow.

The exit status is 1 when flowscope loses or repeats a point or when the answers differ.
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import logging
import secrets
import statistics
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import mlflow
import sqlalchemy as sa
from mlflow import MlflowClient
from mlflow.environment_variables import MLFLOW_TRACKING_TOKEN
from rich.console import Console
from tests.servers import (
    ServerProcess,
    TrackingServer,
    child_environment,
    free_port,
    isolated_environment,
)
from tests.writers import run_writers

from bench.dashboard import (
    CONSTRAINT,
    FLOWSCOPE_TIME_BUDGET,
    MLFLOW_TIME_BUDGET,
    PAGE,
    PG_ADMIN_DSN,
    SORT,
    Figure,
    mlflow_best,
    open_store,
    pandas_summary,
    same_best,
    same_page,
    same_summary,
    timed,
    vacuum_analyze,
)
from bench.logging import (
    Store,
    Trial,
    Workload,
    flowscope_run,
    make_workload,
    mlflow_async,
    mlflow_environment,
)
from flowscope.analysis.best import BestRun
from flowscope.analysis.query import RunPage

PARTS = ("ingest", "writers", "dashboard")
METRICS_PER_STEP = 10
PAGE_TARGET_S = 0.2  # each dashboard answer, at 100,000 runs
SPEEDUP_TARGET = 5.0  # ... and this many times faster than MlflowClient through the server
INGEST_TARGET = 3.0
AUTH_TARGET = 0.95  # throughput with auth on over auth off, at least
ADMIN = ("bench-admin", secrets.token_urlsafe(16))
LOGGER = ("bench-logger", secrets.token_urlsafe(16))
STORE = "postgresql through flowscope server"


@contextmanager
def fresh_database(label: str) -> Iterator[str]:
    """A new PostgreSQL database with MLflow's tables, as a SQLAlchemy URL; dropped after."""
    import psycopg

    name = f"flowscope_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    try:
        MlflowClient(url).search_experiments()  # MLflow's tables, before any server starts
        yield url
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PlainMlflowServer(ServerProcess):
    """``mlflow server`` on ``backend`` with proxied artifacts under ``root``."""

    name = "mlflow-server"

    def __init__(self, root: Path, backend: str, workers: int) -> None:
        super().__init__(root, free_port())
        self.backend, self.workers = backend, workers

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host=127.0.0.1",
            f"--port={self.port}",
            f"--backend-store-uri={self.backend}",
            f"--artifacts-destination={self.root / 'artifacts'}",
            f"--workers={self.workers}",
        ]

    def environment(self) -> dict[str, str]:
        return isolated_environment(self.root)


@contextmanager
def running_server(
    kind: str, folder: Path, url: str, workers: int, auth: bool = False
) -> Iterator[ServerProcess]:
    """``mlflow server`` (``kind`` mlflow) or ``flowscope server`` on ``url`` (with
    ``--auth`` and :data:`ADMIN` as its first admin when ``auth``), started."""
    server: ServerProcess
    if kind == "mlflow":
        server = PlainMlflowServer(folder, url, workers)
    elif auth:
        env = {
            "FLOWSCOPE_ADMIN_USERNAME": ADMIN[0],
            "FLOWSCOPE_ADMIN_PASSWORD": ADMIN[1],
            "FLOWSCOPE_SECRET_KEY": secrets.token_urlsafe(32),
        }
        server = TrackingServer(folder, url, workers=workers, args=["--auth"], env=env)
    else:
        server = TrackingServer(folder, url, workers=workers)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def stored_counts(url: str, run_ids: Sequence[str]) -> dict[str, Counter[tuple[str, int]]]:
    """How many times each (metric, step) of each run is in PostgreSQL's ``metrics`` table."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text(
                    "SELECT run_uuid, key, step, count(*) FROM metrics "
                    "WHERE run_uuid = ANY(:runs) GROUP BY run_uuid, key, step"
                ),
                {"runs": list(run_ids)},
            ).all()
    finally:
        engine.dispose()
    counts: dict[str, Counter[tuple[str, int]]] = {run_id: Counter() for run_id in run_ids}
    for run_id, key, step, count in rows:
        counts[run_id][(key, step)] = count
    return counts


def lost_and_repeated(
    url: str, run_ids: Sequence[str], expected: Counter[tuple[str, int]]
) -> dict[str, int]:
    """How many of the ``expected`` points (each once in every run) PostgreSQL lacks, and
    how many copies too many it holds, over ``run_ids``; stray points count as repeated."""
    lost = repeated = 0
    for counts in stored_counts(url, run_ids).values():
        lost += sum((expected - counts).values())
        repeated += sum((counts - expected).values())
    return {"lost": lost, "repeated": repeated}


def once(cell: dict[str, Any]) -> str:
    if cell["exactly_once"]:
        return "exactly once: yes"
    return f"exactly once: NO, {cell['lost']:,} lost, {cell['repeated']:,} repeated"


def rate_and_ratio(mlflow_cell: dict[str, Any], ours: dict[str, Any]) -> str:
    theirs_rate, our_rate = mlflow_cell["points_per_s"], ours["points_per_s"]
    ratio = our_rate / theirs_rate if our_rate and theirs_rate else None
    return (
        f"mlflow server + async logging {theirs_rate or 0:,.0f} points/s stored "
        f"({once(mlflow_cell)}), flowscope server + SDK {our_rate or 0:,.0f} points/s stored "
        f"({once(ours)}): " + (f"{ratio:.2f}x" if ratio else "incomplete")
    )


def write_token(url: str) -> str:
    """A write token of :data:`LOGGER`, a user made for it, through the server's APIs as a
    team would make them (MLflow's users API, flowscope's tokens API)."""
    made = httpx.post(
        f"{url}/api/2.0/mlflow/users/create",
        json={"username": LOGGER[0], "password": LOGGER[1]},
        auth=ADMIN,
        timeout=60,
    )
    made.raise_for_status()
    issued = httpx.post(
        f"{url}/flowscope/api/tokens",
        json={"name": "bench", "scope": "write"},
        auth=LOGGER,
        timeout=60,
    )
    issued.raise_for_status()
    return str(issued.json()["token"])


# --- ingest: one run -------------------------------------------------------------------


def ingest_cell(
    kind: str, workers: int, workload: Workload, root: Path, auth: bool = False
) -> dict[str, Any]:
    label = f"{kind}-auth" if auth else kind
    with fresh_database(f"{label.replace('-', '_')}_{workers}") as url:
        folder = root / f"ingest-{label}-{workers}-{uuid.uuid4().hex[:6]}"
        with running_server(kind, folder, url, workers, auth) as server:
            store = Store("server", server.url, folder / "unused.db")
            trial = Trial(store, workload, f"bench-{label}-{workers}", folder)
            token = write_token(server.url) if auth else None
            with mlflow_environment(MLFLOW_TRACKING_TOKEN, token):
                if kind == "mlflow":
                    timing = mlflow_async(trial, buffering=1)
                else:
                    timing = flowscope_run(trial)
            assert timing.delivered_s is not None, f"{label}: not everything was delivered"
        errors = lost_and_repeated(url, [timing.run_id], Counter(workload.expected_counts()))
    seconds = timing.delivered_s
    return {
        "part": "ingest",
        "kind": kind,
        "auth": auth,
        "workers": workers,
        "points": workload.points,
        "points_per_s": None if seconds is None else (workload.points - errors["lost"]) / seconds,
        "exactly_once": not any(errors.values()),
        **errors,
    }


def ingest_part(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    workload = make_workload(args.points, METRICS_PER_STEP)
    figures = []
    for workers in args.workers:
        theirs = ingest_cell("mlflow", workers, workload, root)
        ours = ingest_cell("flowscope", workers, workload, root)
        print(
            f"ingest, {workload.points:,} points in one run, {workers} worker(s), PostgreSQL: "
            f"{rate_and_ratio(theirs, ours)} (target >= {INGEST_TARGET:g}x)",
            flush=True,
        )
        figures += [theirs, ours]
        pairs = [(ours, ingest_cell("flowscope", workers, workload, root, auth=True))]
        for index in range(args.auth_pairs - 1):  # alternating, so that load falls on both
            order = (True, False) if index % 2 == 0 else (False, True)
            cells = {on: ingest_cell("flowscope", workers, workload, root, auth=on) for on in order}
            pairs.append((cells[False], cells[True]))
        for off, on in pairs:
            print(f"  {auth_ratio(off, on)}", flush=True)
            figures += [off, on] if off is not ours else [on]
        if len(pairs) > 1:
            ratios = [on["points_per_s"] / off["points_per_s"] for off, on in pairs]
            print(
                f"  auth on over off, median of {len(pairs)} pairs: "
                f"{statistics.median(ratios):.3f} (each {', '.join(f'{r:.3f}' for r in ratios)})",
                flush=True,
            )
    return figures


def auth_ratio(off: dict[str, Any], on: dict[str, Any]) -> str:
    """One pair: the SDK through ``flowscope server`` with and without auth."""
    ratio = on["points_per_s"] / off["points_per_s"]
    return (
        f"auth, {on['workers']} worker(s): flowscope server --auth + SDK with a write token "
        f"{on['points_per_s']:,.0f} points/s stored ({once(on)}), without auth "
        f"{off['points_per_s']:,.0f}: {ratio:.3f} (target >= {AUTH_TARGET:g})"
    )


# --- writers: many processes at once --------------------------------------------------


def writers_cell(kind: str, workers: int, writers: int, steps: int, root: Path) -> dict[str, Any]:
    with fresh_database(f"writers_{kind}_{workers}") as url:
        folder = root / f"writers-{kind}-{workers}"
        with running_server(kind, folder, url, workers) as server:
            result = run_writers(
                kind,
                server.url,
                folder / "writers",
                processes=writers,
                steps=steps,
                metrics=METRICS_PER_STEP,
                experiment=f"writers-{kind}",
                env=child_environment(),
            )
        expected = Counter(
            (f"m{metric}", step) for step in range(steps) for metric in range(METRICS_PER_STEP)
        )
        errors = lost_and_repeated(url, result.run_ids, expected)
    points = writers * steps * METRICS_PER_STEP
    return {
        "part": "writers",
        "kind": kind,
        "workers": workers,
        "writers": writers,
        "points": points,
        "points_per_s": (points - errors["lost"]) / result.seconds,
        "exactly_once": not any(errors.values()) and len(set(result.run_ids)) == writers,
        "all_delivered": result.all_delivered,  # what each writer said when its run ended
        **errors,
    }


def writers_part(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    steps = max(1, args.points // (args.writers * METRICS_PER_STEP))
    points = args.writers * steps * METRICS_PER_STEP
    figures = []
    for workers in args.workers:
        theirs = writers_cell("mlflow", workers, args.writers, steps, root)
        ours = writers_cell("flowscope", workers, args.writers, steps, root)
        print(
            f"writers, {args.writers} processes at once, {points:,} points in all "
            f"({steps * METRICS_PER_STEP:,} each), {workers} worker(s), PostgreSQL: "
            f"{rate_and_ratio(theirs, ours)}",
            flush=True,
        )
        figures += [theirs, ours]
    return figures


# --- dashboard: its JSON at many runs, through the server ------------------------------


def measure(call: Callable[[], Any], budget: float, warm: bool = True) -> tuple[float, Any]:
    """:func:`bench.dashboard.timed` after one untimed call (unless ``warm`` is False)."""
    if warm:
        call()
    return timed(call, budget)


def dashboard_figures(
    server: ServerProcess, experiment: str, runs: int
) -> tuple[list[Figure], dict[str, float]]:
    """Each dashboard answer timed through ``server``, flowscope's JSON against MLflow's
    client, and whether the two agree."""
    web = httpx.Client(base_url=f"{server.url}/flowscope", timeout=600)
    client = MlflowClient(server.url)
    mlflow.set_tracking_uri(server.url)  # for mlflow.search_runs

    def get(path: str, params: dict[str, Any]) -> dict[str, Any]:
        answer = web.get(path, params=params)
        answer.raise_for_status()
        data: dict[str, Any] = answer.json()
        return data

    api = f"/api/experiments/{experiment}"
    runs_page = {"order": SORT[0], "page_size": PAGE, "metric": "m0", "direction": "max"}
    best_run = {"metric": "m0", "direction": "max", "where": CONSTRAINT, "tab": "all"}
    try:
        page_s, page_data = measure(
            lambda: get(f"{api}/runs", {"order": SORT[0], "page_size": PAGE}),
            FLOWSCOPE_TIME_BUDGET,
        )
        summary_s, summary_data = measure(
            lambda: get(f"{api}/summary", {"metric": "m0"}), FLOWSCOPE_TIME_BUDGET
        )
        # like for like: search_runs answers the winner and runners-up, not how many runs
        # were considered, which flowscope counts unless asked not to (timed beside it)
        best_query = {"metric": "m0", "direction": "max", "filter": CONSTRAINT}
        best_s, best_data = measure(
            lambda: get(f"{api}/best", {**best_query, "counts": "false"}),
            FLOWSCOPE_TIME_BUDGET,
        )
        counted_best_s, counted_best = measure(
            lambda: get(f"{api}/best", best_query), FLOWSCOPE_TIME_BUDGET
        )
        whole_page_s, _ = measure(
            lambda: get(f"/experiments/{experiment}.json", runs_page), FLOWSCOPE_TIME_BUDGET
        )
        whole_best_s, _ = measure(
            lambda: get(f"/experiments/{experiment}/best.json", best_run), FLOWSCOPE_TIME_BUDGET
        )
    finally:
        web.close()
    their_page_s, their_page = measure(
        lambda: client.search_runs([experiment], order_by=SORT, max_results=PAGE),
        MLFLOW_TIME_BUDGET,
    )
    their_best_s, their_best = measure(lambda: mlflow_best(client, experiment), MLFLOW_TIME_BUDGET)
    their_summary_s, their_summary = measure(  # minutes at 100,000 runs: once
        lambda: pandas_summary(experiment, max_results=runs), MLFLOW_TIME_BUDGET, warm=False
    )

    page = RunPage(rows=page_data["rows"], total=page_data["total"], page=1, page_size=PAGE)
    winner, runners_up = best_data["winner"], best_data["runners_up"]
    best = BestRun(
        metric="m0",
        direction="max",
        constraints=CONSTRAINT,
        winner=winner,
        value=best_data["value"],
        runners_up=runners_up,
        considered=counted_best["considered"],
        without_metric=counted_best["without_metric"],
        ranking=[winner, *runners_up],
    )
    counted_agrees = (counted_best["winner"], counted_best["runners_up"]) == (winner, runners_up)
    return [
        Figure(STORE, runs, "first page", page_s, their_page_s, same_page(page, their_page)),
        Figure(
            STORE,
            runs,
            "summary",
            summary_s,
            their_summary_s,
            same_summary(summary_data, their_summary),
        ),
        Figure(STORE, runs, "best", best_s, their_best_s, same_best(best, their_best)),
    ], {
        f"best with its counts (same winners: {'yes' if counted_agrees else 'NO'})": counted_best_s,
        "runs page (whole)": whole_page_s,
        "best page (whole)": whole_best_s,
    }


def wait_for_indexes(engine: sa.Engine, timeout: float = 600.0) -> None:
    """Until every one of flowscope's indexes is built and valid."""
    from flowscope.analysis._sql import INDEXES

    valid = sa.text(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indisvalid"
    )
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            if set(INDEXES) <= set(conn.scalars(valid)):
                return
        if time.monotonic() > deadline:
            raise RuntimeError("flowscope's indexes were not built in time")
        time.sleep(0.5)


def dashboard_part(args: argparse.Namespace, root: Path) -> list[dict[str, Any]]:
    console = Console(width=None if sys.stdout.isatty() else 120)
    workers = args.dashboard_workers
    with open_store("postgres", root / "dashboard", [args.runs], console) as store:
        experiment = store.experiments[args.runs]
        with running_server("flowscope", root / "dashboard-server", store.uri, workers) as server:
            # one of the server's workers builds flowscope's indexes while the others
            # serve: wait for them, then statistics and the visibility map for them too
            engine = sa.create_engine(store.uri)
            wait_for_indexes(engine)
            vacuum_analyze(engine)
            engine.dispose()
            measured, pages = dashboard_figures(server, experiment, args.runs)
    print(
        f"dashboard, {args.runs:,} runs on PostgreSQL, flowscope server ({workers} worker(s)): "
        f"the JSON answers over HTTP against MlflowClient through the same server:",
        flush=True,
    )
    figures = []
    for reading in measured:
        ours, ratio = reading.flowscope_s, reading.ratio
        print(
            f"  {reading.query}: flowscope {ours * 1000:,.1f} ms, "
            f"MLflow {reading.mlflow_s * 1000:,.0f} ms: {ratio:,.1f}x, "
            f"same answer: {'yes' if reading.agree else 'NO'}; "
            f"<= {PAGE_TARGET_S * 1000:.0f} ms {'met' if ours <= PAGE_TARGET_S else 'MISSED'}, "
            f">= {SPEEDUP_TARGET:g}x {'met' if ratio >= SPEEDUP_TARGET else 'MISSED'}",
            flush=True,
        )
        figures.append({"part": "dashboard", "workers": workers, **asdict(reading), "ratio": ratio})
    for name, seconds in pages.items():
        print(f"  {name}, no peer: {seconds * 1000:,.1f} ms", flush=True)
    return figures


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument(
        "--points", type=int, default=50_000, help="points per cell of ingest and of writers"
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 4], help="server workers, ingest, writers"
    )
    parser.add_argument("--writers", type=int, default=16, help="processes logging at once")
    parser.add_argument(
        "--auth-pairs", type=int, default=1, help="ingest without and with auth, pairs of"
    )
    parser.add_argument("--runs", type=int, default=100_000, help="runs behind the dashboard")
    parser.add_argument("--dashboard-workers", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.points < METRICS_PER_STEP:
        parser.error(f"--points needs {METRICS_PER_STEP} or more")
    counts = (args.writers, args.auth_pairs, args.dashboard_workers, min(args.workers))
    if min(counts) < 1 or args.runs < 10:
        parser.error(
            "--writers, --workers, --auth-pairs and --dashboard-workers need 1 or more, --runs 10"
        )
    if args.json is not None:
        args.json = args.json.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    for name in ("mlflow", "alembic"):  # store creation and migrations are noise here
        logging.getLogger(name).setLevel(logging.WARNING)
    figures: list[dict[str, Any]] = []
    parts: dict[str, Callable[[argparse.Namespace, Path], list[dict[str, Any]]]] = {
        "ingest": ingest_part,
        "writers": writers_part,
        "dashboard": dashboard_part,
    }
    with tempfile.TemporaryDirectory(prefix="flowscope-bench-server-") as folder:
        for part in PARTS:
            if part in args.part:
                figures += parts[part](args, Path(folder))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))
    correct = all(
        figure["agree"] if figure["part"] == "dashboard" else figure["exactly_once"]
        for figure in figures
        if figure.get("kind") != "mlflow"  # MLflow's losses are a finding, not a failure
    )
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
