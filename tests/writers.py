"""Many writer processes logging into one tracking server at once, for tests and
``bench/server.py``.

Run as a program (``python -m tests.writers``) so that its processes start from a clean
interpreter: it imports MLflow and flowscope once, then forks ``--processes`` children.
Each creates its own run, waits at a barrier until every child has its run, then logs
``--steps`` steps of ``--metrics`` metrics and ends the run, waiting for delivery. The
parent prints one JSON line: the run ids, whether each child delivered everything (the
SDK's own answer; MLflow's async mode gives none, so its children say True and only
counting the stored points tells), and the seconds from the barrier's release until the
last child was done.

``--client flowscope`` logs with flowscope's SDK (which finds a flowscope server's bulk
ingest endpoint); ``--client mlflow`` with MLflow's fluent API in its buffered async mode.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BARRIER_TIMEOUT = 300.0  # a safety net: a child that never reaches the barrier breaks it


@dataclass(frozen=True)
class WritersResult:
    run_ids: list[str]
    delivered: list[bool]
    seconds: float

    @property
    def all_delivered(self) -> bool:
        return all(self.delivered)


def metric_points(client: Any, run_id: str, metrics: int) -> Counter[tuple[str, int, float]]:
    """How many times each point of ``m0`` .. ``m{metrics-1}`` is stored in the run."""
    points: Counter[tuple[str, int, float]] = Counter()
    for metric in range(metrics):
        for point in client.get_metric_history(run_id, f"m{metric}"):
            points[(point.key, point.step, point.value)] += 1
    return points


def value(process: int, step: int, metric: int) -> float:
    """The value each point carries: where it came from, so a misplaced point shows."""
    return float(process * 1_000_000 + step * 100 + metric)


def run_writers(
    client: str,
    tracking_uri: str,
    root: Path,
    *,
    processes: int,
    steps: int,
    metrics: int,
    experiment: str,
    env: dict[str, str] | None = None,
) -> WritersResult:
    """Run the writers in a fresh interpreter and return what they report."""
    command = [
        sys.executable,
        "-m",
        "tests.writers",
        f"--client={client}",
        f"--tracking-uri={tracking_uri}",
        f"--root={root}",
        f"--processes={processes}",
        f"--steps={steps}",
        f"--metrics={metrics}",
        f"--experiment={experiment}",
    ]
    repository = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        command, cwd=repository, env=env, capture_output=True, text=True, timeout=900
    )
    if done.returncode != 0:
        raise RuntimeError(f"the writers failed ({done.returncode}):\n{done.stderr[-4000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return WritersResult(report["run_ids"], report["delivered"], report["seconds"])


def _flowscope_writer(args: argparse.Namespace, index: int, barrier: Any) -> tuple[str, bool]:
    import flowscope
    from flowscope.config import load_settings

    settings = load_settings(
        tracking_uri=args.tracking_uri,
        artifacts_dir=args.root / "mlartifacts",
        journal_dir=args.root / "journal",  # one journal folder for all, as on one machine
        autolog=False,
        sync_on_start=False,
        start_timeout=120.0,
        flush_timeout=600.0,
    )
    run = flowscope.start_run(args.experiment, run_name=f"writer-{index}", settings=settings)
    if run.run_id is None:
        raise RuntimeError(f"writer {index} could not create its run")
    barrier.wait(BARRIER_TIMEOUT)
    for step in range(args.steps):
        run.log_metrics(
            {f"m{metric}": value(index, step, metric) for metric in range(args.metrics)},
            step=step,
        )
    return run.run_id, run.end(timeout=600.0)


def _mlflow_writer(args: argparse.Namespace, index: int, barrier: Any) -> tuple[str, bool]:
    import mlflow

    os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = "1"
    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment(args.experiment)
    with mlflow.start_run(run_name=f"writer-{index}") as run:
        barrier.wait(BARRIER_TIMEOUT)
        for step in range(args.steps):
            mlflow.log_metrics(
                {f"m{metric}": value(index, step, metric) for metric in range(args.metrics)},
                step=step,
                synchronous=False,
            )
        mlflow.flush_async_logging()
    return run.info.run_id, True


def _child(args: argparse.Namespace, index: int, barrier: Any, results: Any) -> None:
    writer = _flowscope_writer if args.client == "flowscope" else _mlflow_writer
    try:
        run_id, delivered = writer(args, index, barrier)
    except BaseException as exc:
        barrier.abort()  # the others stop waiting for this one
        results.put((index, None, False, f"{type(exc).__name__}: {exc}"))
        raise
    results.put((index, run_id, delivered, None))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=["flowscope", "mlflow"], required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=16)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--experiment", default="writers")
    args = parser.parse_args(argv)

    # imported once here, before the fork, so that children start at once
    import mlflow

    import flowscope  # noqa: F401

    mlflow.MlflowClient(args.tracking_uri).search_experiments(max_results=1)
    if mlflow.MlflowClient(args.tracking_uri).get_experiment_by_name(args.experiment) is None:
        mlflow.MlflowClient(args.tracking_uri).create_experiment(args.experiment)

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(args.processes + 1)
    results = context.Queue()
    children = [
        context.Process(target=_child, args=(args, index, barrier, results))
        for index in range(args.processes)
    ]
    for child in children:
        child.start()
    barrier.wait(BARRIER_TIMEOUT)  # every child has its run: they all start logging now
    # for bench/server.py's figures only: no test asserts on how long the writers took
    start = time.perf_counter()
    reports = [results.get(timeout=900) for _ in children]
    seconds = time.perf_counter() - start
    for child in children:
        child.join(timeout=60)
    failures = [error for _, _, _, error in reports if error]
    if failures:
        raise SystemExit(f"{len(failures)} writer(s) failed: {failures[0]}")
    reports.sort()
    print(
        json.dumps(
            {
                "run_ids": [run_id for _, run_id, _, _ in reports],
                "delivered": [delivered for _, _, delivered, _ in reports],
                "seconds": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
