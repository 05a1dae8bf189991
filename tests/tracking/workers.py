"""Training processes the tests start, crash and run side by side (``python -m``)."""

from __future__ import annotations

import argparse
import sys
import time

import flowscope
from flowscope.config import load_settings


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
        time.sleep(3600)
    ok = run.end()
    print("delivered" if ok else "pending", run.run_id, flush=True)
    sys.exit(0 if ok else 3)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("task")
    parser.add_argument("run_name")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--metrics", type=int, default=10)
    parser.add_argument("--then", choices=["end", "hang"], default="end")
    args = parser.parse_args()
    log_points(args.task, args.run_name, args.steps, args.metrics, args.then)
