"""Processes the tests start, crash and run side by side (``python -m tests.tracking.workers``).

``log TASK NAME``: a training process logging points; ``open VIA``: a process opening the
store as the SDK, the dashboard or the CLI does. Each takes its settings from the environment
(:func:`environment`), and stops in the middle of creating a new store when told to
(:func:`holding_creation`), so that a test acts at that exact moment.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import flowscope
from flowscope.config import load_settings
from flowscope.tracking.opening import TEST_HOLD_CREATION_ENV
from tests.moments import ProcessEnded, make_fifo, open_to_read, read_line

ROOT = Path(__file__).resolve().parents[2]


def environment(root: Path, tracking_uri: str) -> dict[str, str]:
    """This process's environment without MLflow or flowscope configuration, for a store at
    ``tracking_uri`` with journal and artifacts under ``root``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWSCOPE_", "MLFLOW_"))}
    env.pop(TEST_HOLD_CREATION_ENV, None)
    env.update(
        MLFLOW_TRACKING_URI=tracking_uri,
        FLOWSCOPE_JOURNAL_DIR=str(root / "journal"),
        FLOWSCOPE_ARTIFACTS_DIR=str(root / "mlartifacts"),
    )
    return env


def holding_creation(env: dict[str, str], marker: Path) -> dict[str, str]:
    """``env`` for a process that stops in the middle of creating a new store and says so on
    the FIFO ``marker``, made here with its release FIFO (see :func:`wait_until_held` and
    :func:`release`)."""
    make_fifo(marker)
    make_fifo(Path(f"{marker}.release"))
    return {**env, TEST_HOLD_CREATION_ENV: str(marker)}


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``python -m tests.tracking.workers ARGS``; its stdin is a pipe that nothing writes,
    which a process told to hang reads until the test ends it (or the test is gone)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.tracking.workers", *args],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_held(process: subprocess.Popen[str], marker: Path) -> None:
    """Block until ``process`` stands in the middle of creating the store (it writes its
    id to ``marker``); a process that ends first fails the test at once."""
    told = open_to_read(marker)
    try:
        line = read_line(told, [process], "it began creating the store")
    except ProcessEnded:
        _, err = process.communicate()
        raise AssertionError(
            f"the process ended (exit code {process.returncode}) without stopping in the "
            f"middle of creating the store:\n{err[-3000:]}"
        ) from None
    finally:
        os.close(told)
    assert line == str(process.pid), line


def release(marker: Path) -> None:
    """Let a process held by :func:`holding_creation` go on creating the store."""
    Path(f"{marker}.release").write_text("go\n")


def log_points(task: str, run_name: str, steps: int, metrics: int, then: str) -> None:
    """Log ``steps`` × ``metrics`` points, print ``logged`` and either end the run or hang
    (so that the parent can kill the process with everything journaled)."""
    settings = load_settings(autolog=False, sync_on_start=False, flush_timeout=120)
    run = flowscope.start_run(task, run_name=run_name, settings=settings)
    run.log_params({"steps": steps, "metrics": metrics})
    for step in range(steps):
        run.log_metrics({f"m{i}": step * 1000 + i for i in range(metrics)}, step=step)
    print("logged", flush=True)
    if then == "hang":
        sys.stdin.read()  # until the test kills it; should the test be gone first, EOF
        os._exit(4)
    ok = run.end()
    print("delivered" if ok else "pending", run.run_id, flush=True)
    sys.exit(0 if ok else 3)


def open_store(via: str) -> None:
    """Open the store as ``via`` does and print the experiments it finds: ``sdk`` (the
    journal's writer), ``dashboard`` (the dashboard's run store) or ``client`` (the CLI,
    the registry and the prediction service)."""
    settings = load_settings(autolog=False, sync_on_start=False)
    if via == "sdk":
        from flowscope.tracking.store import StoreAccess

        names = [e.name for e in StoreAccess(settings).store.search_experiments()]
    elif via == "dashboard":
        from flowscope.analysis.query import open_run_store

        store = open_run_store(settings)
        names = [e["name"] for e in store.experiments()]
    else:
        from flowscope.mlflow_client import client_for

        names = [e.name for e in client_for(settings).search_experiments()]
    print("opened", ",".join(sorted(names)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command", required=True)
    log = commands.add_parser("log")
    log.add_argument("task")
    log.add_argument("run_name")
    log.add_argument("--steps", type=int, default=1000)
    log.add_argument("--metrics", type=int, default=10)
    log.add_argument("--then", choices=["end", "hang"], default="end")
    opening = commands.add_parser("open")
    opening.add_argument("via", choices=["sdk", "dashboard", "client"])
    args = parser.parse_args()
    if args.command == "log":
        log_points(args.task, args.run_name, args.steps, args.metrics, args.then)
    else:
        open_store(args.via)
