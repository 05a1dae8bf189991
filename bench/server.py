"""Ingest through a tracking server, side by side: the logging workload through
``mlflow server`` with MLflow's buffered async logging, and through ``flowscope server``
with flowscope's SDK (which finds the server's bulk ingest endpoint), both on fresh
databases of the same PostgreSQL, with 1 and then 4 server workers each.

Run from the repository root (either form)::

    .venv/bin/python bench/server.py
    .venv/bin/python -m bench.server --points 20000 --workers 1 4

Each cell starts its server on a new database (MLflow's tables created first), logs the
same ``--points`` points (10 metrics a step) in one run, times from the first log call
until every point is in the store, then counts the points in PostgreSQL: each must be
stored exactly once. It prints points per second for both and their ratio.

Not measured yet (issue 15): 16 concurrent writer processes, and the dashboard's pages at
100,000 runs through the server.
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.servers import ServerProcess, TrackingServer, free_port, isolated_environment

from bench.logging import Store, Trial, Workload, flowscope_run, make_workload, mlflow_async

PG_ADMIN_DSN = os.environ.get("FLOWSCOPE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(label: str) -> Iterator[str]:
    """A new PostgreSQL database with MLflow's tables, as a SQLAlchemy URL; dropped after."""
    import psycopg
    from mlflow import MlflowClient

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


def stored_exactly_once(url: str, run_id: str, workload: Workload) -> bool:
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sqlalchemy.text(
                    "SELECT key, step, count(*) FROM metrics WHERE run_uuid = :run "
                    "GROUP BY key, step"
                ),
                {"run": run_id},
            ).all()
    finally:
        engine.dispose()
    return {(key, step): count for key, step, count in rows} == workload.expected_counts()


def cell(kind: str, workers: int, workload: Workload, root: Path) -> dict[str, Any]:
    with fresh_database(f"{kind}_{workers}") as url:
        folder = root / f"{kind}-{workers}"
        server: ServerProcess
        if kind == "mlflow":
            server = PlainMlflowServer(folder, url, workers)
        else:
            server = TrackingServer(folder, url, workers=workers)
        server.start()
        try:
            store = Store("server", server.url, folder / "unused.db")
            trial = Trial(store, workload, f"bench-{kind}-{workers}", folder)
            mode = "mlflow async" if kind == "mlflow" else "flowscope"
            timing = mlflow_async(trial, buffering=1) if kind == "mlflow" else flowscope_run(trial)
            assert timing.delivered_s is not None, f"{mode}: not everything was delivered"
        finally:
            server.stop()
        once = stored_exactly_once(url, timing.run_id, workload)
    seconds = timing.delivered_s
    return {
        "kind": kind,
        "workers": workers,
        "points_per_s": None if seconds is None else workload.points / seconds,
        "exactly_once": once,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=50_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args(argv)
    workload = make_workload(args.points, 10)
    with tempfile.TemporaryDirectory(prefix="flowscope-bench-server-") as folder:
        root = Path(folder)
        for workers in args.workers:
            mlflow_cell = cell("mlflow", workers, workload, root)
            ours = cell("flowscope", workers, workload, root)
            theirs_rate, our_rate = mlflow_cell["points_per_s"], ours["points_per_s"]
            ratio = our_rate / theirs_rate if our_rate and theirs_rate else None
            print(
                f"{workload.points:,} points, {workers} worker(s), PostgreSQL: "
                f"mlflow server + async logging {theirs_rate or 0:,.0f} points/s "
                f"(exactly once: {mlflow_cell['exactly_once']}), "
                f"flowscope server + SDK {our_rate or 0:,.0f} points/s "
                f"(exactly once: {ours['exactly_once']}): "
                + (f"{ratio:.2f}x (target >= 3x)" if ratio else "incomplete")
            )


if __name__ == "__main__":
    main()
