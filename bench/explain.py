"""SHAP explanations, side by side: flowscope against shap's TreeExplainer and KernelExplainer.

Run from the repository root::

    .venv/bin/python bench/explain.py
    .venv/bin/python -m bench.explain --rows 1000 --kernel-rows 20 --json figures.json

A random forest (100 trees, unlimited depth) is fitted on 2,000 × 30 synthetic rows
(scikit-learn's ``make_classification``) and 1,000 rows are explained:

- flowscope (``explain_model``): exact path-dependent TreeSHAP, every core, then also on one
  thread to separate the algorithm's gain from the threads';
- shap's ``TreeExplainer`` called plainly (``shap_values(X)``): the same game, the reference
  values the others' errors are measured against;
- shap's ``KernelExplainer`` on a few rows (it manages about a row per second), extrapolated,
  its error measured against exact interventional values on the same background.

Then the time explanations add to the quick demo's training runs (each job trained with and
without explanations). The machine's load is printed: other work on the cores slows every
column, the threaded one most.
"""

from __future__ import annotations

import os
import sys

# Run as ``python bench/explain.py``, this file's folder is sys.path[0], where
# bench/logging.py would shadow the standard ``logging`` module.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import json
import logging
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

TARGET_VS_TREE_EXPLAINER = 1.8  # flowscope's rows/s over plain TreeExplainer's, at least


@dataclass
class Measure:
    method: str
    rows: int
    seconds: float
    cpu_seconds: float
    max_error: float | None
    note: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds


def _timed(function: Any) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def explainers(rows: int, kernel_rows: int) -> list[Measure]:
    """The three explainers on the same forest and rows."""
    import shap
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    from flowscope.explain import explain_model

    X, y = make_classification(
        n_samples=2000, n_features=30, n_informative=10, n_redundant=5, random_state=0
    )
    model = RandomForestClassifier(n_estimators=100, max_depth=None, n_jobs=-1, random_state=0)
    model.fit(X, y)
    model.set_params(n_jobs=1)
    explained = X[:rows]
    explain_model(model, X[:10])  # loads the compiled kernel from numba's cache

    plain, seconds, cpu = _timed(lambda: shap.TreeExplainer(model).shap_values(explained))
    exact = np.asarray(plain)[:, :, 1]  # the positive class, as flowscope explains it
    measures = [Measure("shap TreeExplainer (plain)", rows, seconds, cpu, 0.0, "the reference")]

    ours, seconds, cpu = _timed(lambda: explain_model(model, explained, max_rows=rows))
    error = float(np.max(np.abs(ours.values[:, :, 0] - exact)))
    measures.append(
        Measure("flowscope (every core)", rows, seconds, cpu, error, f"{ours.explainer}")
    )
    single, seconds, cpu = _timed(
        lambda: explain_model(model, explained, max_rows=rows, n_threads=1)
    )
    error = float(np.max(np.abs(single.values[:, :, 0] - exact)))
    measures.append(Measure("flowscope (one thread)", rows, seconds, cpu, error, "algorithm only"))

    background = X[1000:1050]
    few = X[:kernel_rows]

    def positive(matrix: np.ndarray) -> np.ndarray:
        return model.predict_proba(matrix)[:, 1]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kernel, seconds, cpu = _timed(
            lambda: shap.KernelExplainer(positive, background).shap_values(few, silent=True)
        )
        interventional = shap.TreeExplainer(
            model, data=background, feature_perturbation="interventional"
        ).shap_values(few, check_additivity=False)
    error = float(np.max(np.abs(np.asarray(kernel) - np.asarray(interventional)[:, :, 1])))
    measures.append(
        Measure(
            "shap KernelExplainer",
            kernel_rows,
            seconds,
            cpu,
            error,
            f"{kernel_rows} rows, 50 background rows; error vs exact interventional values",
        )
    )
    return measures


def demo_overhead(jobs_limit: int | None = None) -> list[dict[str, Any]]:
    """Each quick-demo training job with and without explanations, in a throwaway store."""
    from flowscope.config import load_settings
    from flowscope.demo import demo_jobs
    from flowscope.modeling.data import load_builtin
    from flowscope.modeling.train import train

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    rows = []
    with tempfile.TemporaryDirectory(prefix="flowscope-bench-explain-") as folder:
        root = Path(folder)
        settings = load_settings(
            tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifacts_dir=root / "mlartifacts",
            journal_dir=root / "journal",
            autolog=False,
            sync_on_start=False,
        )
        jobs = list(demo_jobs(quick=True))[:jobs_limit]
        for job in jobs:
            frame, target = load_builtin(job.dataset)

            def run(explain: bool, job: Any = job, frame: Any = frame, target: Any = target) -> Any:
                return train(
                    frame,
                    target,
                    job.model_type,
                    job.params,
                    task=f"bench-{job.task}",
                    run_name=job.run_name,
                    thresholds=job.thresholds,
                    settings=settings,
                    explain=explain,
                )

            if job is jobs[0]:
                run(False)  # warm-up: the first run in a process pays for imports
            _, without, _ = _timed(lambda: run(False))
            result, with_, _ = _timed(lambda: run(True))
            from mlflow import MlflowClient

            logged = MlflowClient(settings.tracking_uri).get_run(result.run_id).data
            rows.append(
                {
                    "job": f"{job.task}/{job.run_name or job.model_type}",
                    "without_s": without,
                    "with_s": with_,
                    "explain_time_s": logged.metrics.get("explain_time_s"),
                    "skipped": logged.tags.get("flowscope.explain.skipped"),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows explained (default 1000)")
    parser.add_argument("--kernel-rows", type=int, default=20, help="rows for KernelExplainer")
    parser.add_argument("--skip-demo", action="store_true", help="skip the training overhead")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    console = Console(width=132)
    # the cores this process may use, as the tree explainer counts them
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()
    console.print(
        f"cores: {cores}   load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
        "   (other work on the cores slows every column)"
    )
    measures = explainers(args.rows, args.kernel_rows)
    reference = measures[0].rows_per_second
    table = Table(title=f"random forest, 100 trees, unlimited depth; 2,000 × 30; {args.rows} rows")
    for column in ("method", "rows/s", "× TreeExplainer", "CPU s / 1000 rows", "max error", "note"):
        table.add_column(column, justify="left" if column in ("method", "note") else "right")
    for measure in measures:
        table.add_row(
            measure.method,
            f"{measure.rows_per_second:,.1f}",
            f"{measure.rows_per_second / reference:.2f}",
            f"{measure.cpu_seconds / measure.rows * 1000:.2f}",
            "" if measure.max_error is None else f"{measure.max_error:.1e}",
            measure.note,
        )
    console.print(table)
    ours = measures[1].rows_per_second
    kernel = measures[3].rows_per_second
    console.print(
        f"flowscope / TreeExplainer: {ours / reference:.2f}× (target ≥ {TARGET_VS_TREE_EXPLAINER}×)"
        f"   flowscope / KernelExplainer: {ours / kernel:,.0f}×"
        f"   (KernelExplainer extrapolated to {args.rows} rows: {args.rows / kernel:,.0f} s)"
    )
    demo: list[dict[str, Any]] = []
    if not args.skip_demo:
        demo = demo_overhead()
        table = Table(title="quick demo training runs: time explanations add")
        for column in ("job", "without (s)", "with (s)", "explain_time_s", "note"):
            table.add_column(column, justify="left" if column in ("job", "note") else "right")
        for row in demo:
            table.add_row(
                row["job"],
                f"{row['without_s']:.2f}",
                f"{row['with_s']:.2f}",
                "" if row["explain_time_s"] is None else f"{row['explain_time_s']:.2f}",
                f"skipped: {row['skipped'][:50]}" if row["skipped"] else "",
            )
        without = sum(row["without_s"] for row in demo)
        with_ = sum(row["with_s"] for row in demo)
        explain_total = sum(row["explain_time_s"] or 0.0 for row in demo)
        table.add_row("total", f"{without:.2f}", f"{with_:.2f}", f"{explain_total:.2f}", "")
        console.print(table)
    if args.json:
        figures = {
            "cores": cores,
            "load_average": load,
            "explainers": [{**asdict(m), "rows_per_second": m.rows_per_second} for m in measures],
            "demo": demo,
        }
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if ours / reference >= TARGET_VS_TREE_EXPLAINER else 1


if __name__ == "__main__":
    sys.exit(main())
