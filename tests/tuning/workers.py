"""A study worker the tests start, run side by side and kill (``python -m``)."""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

import optuna

import flowscope
from flowscope.config import load_settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--storage", required=True)
    parser.add_argument("--study", required=True)
    parser.add_argument("--trials", type=int, required=True)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--hang-trial", type=int, default=-1)
    parser.add_argument("--marker", type=Path)
    parser.add_argument("--flush-timeout", type=float, default=120.0)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = load_settings(
        tracking_uri=args.tracking_uri,
        artifacts_dir=args.root / "mlartifacts",
        journal_dir=args.root / "journal",
        autolog=False,
        sync_on_start=False,
        flush_timeout=args.flush_timeout,
        start_timeout=10.0,
        max_backoff=0.5,
    )

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -10, 10)
        trial.report(x, 0)
        if trial.number == args.hang_trial:
            # tell the test (on its FIFO) which process to kill, then wait for it
            args.marker.write_text(f"{os.getpid()}\n")
            threading.Event().wait()
        return (x - 2) ** 2

    result = flowscope.tune(
        objective,
        study=args.study,
        storage=args.storage,
        n_trials=args.trials,
        n_jobs=args.n_jobs,
        direction="min",
        heartbeat_interval=1,
        grace_period=3,
        settings=settings,
    )
    print("parent", result.parent_run_id, flush=True)


if __name__ == "__main__":
    main()
