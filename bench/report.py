"""The comparison report, side by side: ``flowscope report compare`` against the seed's
approach, ``mlflow.search_runs`` into pandas and matplotlib charts of the same content.

Run from the repository root (either form)::

    .venv/bin/python bench/report.py
    .venv/bin/python -m bench.report --runs 1000 --repeats 5 --stores sqlite,postgres

Each store (a SQLite file in a temporary folder; with ``--stores ...,postgres`` also a
throwaway PostgreSQL database, dropped at the end) gets an experiment per size, seeded by
bulk insert into MLflow's tables (:mod:`bench.dashboard`'s seeding): a grid over three tree
ensembles, seven parameters (four categorical, three numeric), accuracy, F1, ROC AUC, log
loss, precision, recall and the training time, with 1% of runs failed before logging a
metric. The best run and the runner-up by accuracy carry the ``evaluation/`` artifacts
training logs (``metrics.json``, ``confusion_matrix.json``, the held-out predictions), so
the report has per-class rows, a confusion matrix and a paired test to show.

For each size, both sides run from a new store object, in one process (imports are paid
before timing), alternating, ``--repeats`` times; the median is printed:

- flowscope: ``compare_task`` (what ``flowscope report compare TASK`` calls: read and rank
  every run, parameter importance, the paired test, the best run's artifacts), then
  ``write_comparison`` as HTML (charts embedded, the CSV of every run beside it), as
  Markdown (PNG charts and CSV beside it) and as CSV; each format's time is the data's
  plus its own writing. The HTML's size is printed, and the time ``flowscope report
  compare --format html`` takes as a new process (imports included), once per size.
- the seed's approach: ``mlflow.search_runs(experiment_ids=[...], max_results=...)`` into a
  DataFrame (MLflow pages through every run), the best run by the metric (earliest start
  on a tie), its evaluation tables, every run to CSV, then with matplotlib the metric per
  run as a bar chart, each varying parameter against the metric (box and strip plot for a
  categorical one, scatter for a numeric one) and ``pandas.plotting.parallel_coordinates``,
  each saved as a PNG. It draws every run and computes no importance and no paired test.

Targets at 10,000 runs on SQLite: the HTML report in at most 5 s, at least 5 times faster
than the seed's approach, and at most 2 MB. The exit status is 1 when one is missed or when
the two sides name a different best run.
"""

from __future__ import annotations

import os
import sys

# Run as ``python bench/report.py``, this file's folder is sys.path[0], and its neighbour
# bench/logging.py would shadow the standard ``logging`` module; flowscope and bench are
# imported from the repository root instead, whatever the working folder.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import functools
import json
import logging
import math
import random
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: the seed's approach saves its charts, shows none

import mlflow
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.dashboard import (
    T0,
    Store,
    add_run,
    check_sizes_and_stores,
    empty_rows,
    open_store,
)
from flowscope.analysis.query import reading_runs
from flowscope.reports import CompareQuery, compare_task, write_comparison

TARGET_SECONDS = 5.0  # the HTML report at 10,000 runs on SQLite, at most
TARGET_RATIO = 5.0  # times faster than the seed's approach, at least
TARGET_BYTES = 2_000_000  # the HTML at 10,000 runs, at most
TARGET_RUNS = 10_000
METRIC = "accuracy"
HELD_OUT = 1000  # rows of the held-out set: accuracies are multiples of 1/1000, ties happen
MAX_RESULTS = 100_000
EVALUATION_TABLES = ("metrics.json", "confusion_matrix.json")
CLASS_NAMES = {0: "malignant", 1: "benign"}

# The grid: three tree ensembles and what each parameter adds to the accuracy.
MODEL_BASE = {"gradient_boosting": 0.955, "random_forest": 0.948, "extra_trees": 0.944}
SECONDS_PER_TREE = {"gradient_boosting": 0.012, "random_forest": 0.006, "extra_trees": 0.004}
N_ESTIMATORS = (50, 100, 200, 400)
MAX_DEPTH = ("3", "6", "12", "None")
CRITERION = ("gini", "entropy", "log_loss")


# --- seeding ---------------------------------------------------------------------------


def grid_rows(
    experiment_id: str, runs: int, seed: int, artifacts: Path
) -> dict[Any, list[dict[str, Any]]]:
    """MLflow's rows for ``runs`` runs of a grid search (see the module's docstring); the
    best two runs' ``evaluation/`` artifacts are written under ``artifacts`` as training
    would, and their metrics are the evaluation's."""
    rng = random.Random(seed)
    runs_seeded = []
    for i in range(runs):
        model = rng.choice(list(MODEL_BASE))
        trees = rng.choice(N_ESTIMATORS)
        depth = rng.choice(MAX_DEPTH)
        learning_rate = 10 ** rng.uniform(-3, 0)
        subsample = rng.uniform(0.5, 1.0)
        leaf = rng.randint(1, 50)
        params = {
            "dataset": "breast_cancer",
            "target": "target",
            "model_type": model,
            "model.n_estimators": str(trees),
            "model.max_depth": depth,
            "model.criterion": rng.choice(CRITERION),
            "model.learning_rate": f"{learning_rate:.5g}",
            "model.subsample": f"{subsample:.3f}",
            "model.min_samples_leaf": str(leaf),
        }
        accuracy = (
            MODEL_BASE[model]
            + 0.012 * (math.log10(trees) - 2)
            - 0.015 * abs(math.log10(learning_rate) + 1.3)
            + (0.006 if depth in ("6", "12") else 0.0)
            + 0.004 * (subsample - 0.75)
            - 0.0003 * leaf
            + rng.gauss(0, 0.008)
        )
        accuracy = round(min(max(accuracy, 0.6), 0.999) * HELD_OUT) / HELD_OUT
        seconds = trees * SECONDS_PER_TREE[model] * math.exp(rng.gauss(0, 0.2))
        failed = rng.random() < 0.01
        metrics = {}
        if not failed:
            metrics = {
                "accuracy": accuracy,
                "f1": round(accuracy - abs(rng.gauss(0.004, 0.003)), 6),
                "roc_auc": round(min(0.9999, accuracy + 0.025 + rng.gauss(0, 0.004)), 6),
                "log_loss": round(0.05 + (1 - accuracy) * 3 + abs(rng.gauss(0, 0.02)), 6),
                "precision": round(accuracy + rng.gauss(0, 0.004), 6),
                "recall": round(accuracy + rng.gauss(0, 0.004), 6),
                "training_time_s": round(seconds, 4),
            }
        run_id = uuid.UUID(int=rng.getrandbits(128)).hex
        start = T0 + i * 60_000
        runs_seeded.append((i, run_id, start, failed, params, metrics, seconds))
    # The best two by the report's rule (best score, then the earliest start) get what
    # training logs for them: the evaluation tables, the predictions, the per-class metrics.
    scored = [run for run in runs_seeded if run[5]]
    scored.sort(key=lambda run: (-run[5][METRIC], run[2], run[1]))
    truth = np.asarray([rng.random() < 0.63 for _ in range(HELD_OUT)], dtype=int)
    for run in scored[:2]:
        run[5].update(_write_evaluation(artifacts / run[1] / "artifacts", truth, run[5], rng))
    rows = empty_rows()
    for i, run_id, start, failed, params, metrics, seconds in runs_seeded:
        add_run(
            rows,
            experiment_id=experiment_id,
            run_id=run_id,
            name=f"{params['model_type']}-{i:05d}",
            user="bench",
            start=start,
            end=start + (3000 if failed else int(seconds * 1000) + 2000),
            tags={"flowscope.kind": "training"},
            params=params,
            metrics=metrics,
            artifact_uri=(artifacts / run_id / "artifacts").as_uri(),
            status="FAILED" if failed else "FINISHED",
        )
    return rows


def _write_evaluation(
    folder: Path, truth: np.ndarray, metrics: dict[str, float], rng: random.Random
) -> dict[str, float]:
    """Predictions on the held-out rows with exactly the run's accuracy, evaluated as
    training evaluates them; the tables and predictions written to ``folder/evaluation``,
    the evaluation's metrics returned. Its figures are left out: the report reads none."""
    from flowscope.tracking.evaluation import evaluate_classification

    wrong = rng.sample(range(HELD_OUT), round((1 - metrics[METRIC]) * HELD_OUT))
    predicted = truth.copy()
    predicted[wrong] = 1 - predicted[wrong]
    confidence = np.asarray([rng.uniform(0.5, 1.0) for _ in range(HELD_OUT)])
    score = np.where(predicted == 1, confidence, 1 - confidence)
    result = evaluate_classification(truth, predicted, score, class_names=CLASS_NAMES)
    target = folder / "evaluation"
    target.mkdir(parents=True, exist_ok=True)
    for name, table in result.tables.items():
        (target / name).write_text(json.dumps(table))
    result.predictions.to_parquet(target / "predictions.parquet")
    if not math.isclose(result.metrics[METRIC], metrics[METRIC]):
        raise RuntimeError(f"the evaluation's {METRIC} is not the run's")
    return {key: float(value) for key, value in result.metrics.items()}


# --- the two sides ----------------------------------------------------------------------


def flowscope_report(store: Store, task: str, folder: Path) -> dict[str, Any]:
    """The report as ``flowscope report compare`` makes it, from a new store object: the
    data, then HTML, Markdown and CSV; each phase's seconds, the HTML's size, the winner."""
    times = {}
    started = time.perf_counter()
    with reading_runs(store.settings) as runs:
        data = compare_task(store.settings, runs, task, CompareQuery())
    times["data"] = time.perf_counter() - started
    for fmt, name in (("html", "report.html"), ("markdown", "report.md"), ("csv", "runs.csv")):
        started = time.perf_counter()
        write_comparison(data, fmt, folder / name)
        times[fmt] = time.perf_counter() - started
    return {
        "times": times,
        "html_bytes": (folder / "report.html").stat().st_size,
        "best": data["best"]["run_id"],
        "runs": data["counts"]["runs"],
        "metric": data["metric"]["name"],
    }


def seed_report(experiment_id: str, metric: str, folder: Path) -> dict[str, Any]:
    """The seed's approach to the same content: every run into pandas, the best one, a CSV,
    and matplotlib charts saved as PNGs."""
    import matplotlib.pyplot as plt
    from pandas.plotting import parallel_coordinates

    frame = mlflow.search_runs(experiment_ids=[experiment_id], max_results=MAX_RESULTS)
    column = f"metrics.{metric}"
    frame = frame.sort_values(
        [column, "start_time", "run_id"], ascending=[False, True, True], na_position="last"
    )
    best = frame.iloc[0]
    evaluation: dict[str, Any] = {}
    for name in EVALUATION_TABLES:
        try:
            evaluation[name] = mlflow.artifacts.load_dict(
                f"{best['artifact_uri']}/evaluation/{name}"
            )
        except Exception:  # MLflow raises several kinds for a missing artifact
            evaluation[name] = None
    frame.to_csv(folder / "runs.csv", index=False)
    scored = frame[frame[column].notna()]

    figure, axes = plt.subplots(figsize=(12, 4))
    colours = ["#cf222e"] + ["#0969da"] * (len(scored) - 1)
    axes.bar(np.arange(len(scored)), scored[column], color=colours)
    axes.set_xlabel("run (best first)")
    axes.set_ylabel(metric)
    axes.set_title(f"{metric} per run")
    figure.savefig(folder / "metric_per_run.png", dpi=100)
    plt.close(figure)

    params = [
        name
        for name in frame.columns
        if name.startswith("params.") and frame[name].nunique(dropna=False) > 1
    ]
    encoded = {}
    for name in params:
        figure, axes = plt.subplots(figsize=(5, 4))
        numbers = pd.to_numeric(scored[name], errors="coerce")
        if numbers.notna().all() and numbers.nunique() > 6:
            axes.scatter(numbers, scored[column], s=8, alpha=0.5)
            axes.scatter([numbers.iloc[0]], [scored[column].iloc[0]], color="#cf222e")
            encoded[name] = (numbers - numbers.min()) / ((numbers.max() - numbers.min()) or 1)
        else:
            values = scored[name].fillna("(unset)")
            choices = sorted(values.unique())
            groups = [scored.loc[values == choice, column] for choice in choices]
            axes.boxplot(groups, tick_labels=choices, showfliers=False)
            codes = values.map({choice: i for i, choice in enumerate(choices)})
            jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(codes))
            axes.scatter(codes + 1 + jitter, scored[column], s=6, alpha=0.3)
            encoded[name] = codes / max(len(choices) - 1, 1)
        axes.set_xlabel(name.removeprefix("params."))
        axes.set_ylabel(metric)
        figure.savefig(folder / f"param_{name.removeprefix('params.')}.png", dpi=100)
        plt.close(figure)

    table = pd.DataFrame(encoded)
    low, high = scored[column].min(), scored[column].max()
    table[metric] = (scored[column] - low) / ((high - low) or 1)
    table["quartile"] = pd.qcut(scored[column], 4, labels=False, duplicates="drop").astype(str)
    figure, axes = plt.subplots(figsize=(12, 5))
    parallel_coordinates(table, "quartile", ax=axes, alpha=0.3)
    axes.set_title("parallel coordinates")
    figure.savefig(folder / "parallel_coordinates.png", dpi=100)
    plt.close(figure)
    return {"best": str(best["run_id"]), "runs": len(frame), "evaluation": evaluation}


def cli_seconds(store: Store, task: str, folder: Path) -> float | None:
    """``flowscope report compare TASK --format html`` as a new process, imports included
    (None when the ``flowscope`` command is not beside this Python)."""
    command = Path(sys.executable).with_name("flowscope")
    if not command.exists():
        return None
    started = time.perf_counter()
    subprocess.run(
        [str(command), "report", "compare", task, "--format", "html", "-o", "cli.html"],
        cwd=folder,
        env={**os.environ, "MLFLOW_TRACKING_URI": store.uri},
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


# --- measuring ------------------------------------------------------------------------


@dataclass
class Figure:
    store: str
    runs: int
    flowscope_s: float  # the data and the HTML, the median round: what the targets are about
    data_s: float  # of which reading and analysing the runs
    html_s: float  # and writing the HTML (with the CSV beside it)
    markdown_s: float  # the data and the Markdown with its PNGs
    csv_s: float  # the data and the CSV
    seed_s: float
    html_bytes: int
    cli_s: float | None
    agree: bool
    repeats: list[dict[str, float]] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.seed_s / self.flowscope_s if self.flowscope_s else math.inf


def measure(store: Store, runs: int, folder: Path, repeats: int) -> Figure:
    experiment = store.experiments[runs]
    task = f"bench-{runs}"
    ours_folder, theirs_folder = folder / "flowscope", folder / "seed"
    ours_folder.mkdir(parents=True)
    theirs_folder.mkdir(parents=True)
    ours: list[dict[str, Any]] = []
    theirs: list[float] = []
    answers = set()
    for _ in range(repeats):  # alternating, so that the machine's moods fall on both sides
        found = flowscope_report(store, task, ours_folder)
        ours.append(found)
        started = time.perf_counter()
        seeded = seed_report(experiment, found["metric"], theirs_folder)
        theirs.append(time.perf_counter() - started)
        answers.add((found["best"], found["runs"], seeded["best"], seeded["runs"]))
    agree = len(answers) == 1 and all(a[0] == a[2] and a[1] == a[3] for a in answers)
    phases = [one["times"] for one in ours]
    # The round of the median HTML time (the lower one of an even count), so that its data
    # and rendering times add up to the figure printed.
    middle = sorted(phases, key=lambda t: t["data"] + t["html"])[(len(phases) - 1) // 2]
    return Figure(
        store=store.name,
        runs=runs,
        flowscope_s=middle["data"] + middle["html"],
        data_s=middle["data"],
        html_s=middle["html"],
        markdown_s=statistics.median([t["data"] + t["markdown"] for t in phases]),
        csv_s=statistics.median([t["data"] + t["csv"] for t in phases]),
        seed_s=statistics.median(theirs),
        html_bytes=ours[-1]["html_bytes"],
        cli_s=cli_seconds(store, task, ours_folder),
        agree=agree,
        repeats=[{**t, "seed": s} for t, s in zip(phases, theirs, strict=True)],
    )


def warm_up(store: Store, runs: int, folder: Path) -> None:
    """One untimed round of both sides: imports, matplotlib's font cache, first queries."""
    folder.mkdir(parents=True)
    found = flowscope_report(store, f"bench-{runs}", folder)
    seed_report(store.experiments[runs], found["metric"], folder)


def verdicts(figures: Sequence[Figure]) -> list[tuple[str, bool]]:
    """Each target against the 10,000-run SQLite figure, and whether the sides agree."""
    found = []
    for figure in figures:
        if figure.store != "sqlite" or figure.runs != TARGET_RUNS:
            continue
        found += [
            (
                f"HTML report in {figure.flowscope_s:.2f} s (target at most "
                f"{TARGET_SECONDS:.0f} s)",
                figure.flowscope_s <= TARGET_SECONDS,
            ),
            (
                f"{figure.ratio:.1f}x faster than the seed's approach (target at least "
                f"{TARGET_RATIO:.0f}x)",
                figure.ratio >= TARGET_RATIO,
            ),
            (
                f"HTML of {figure.html_bytes / 1e6:.2f} MB (target at most "
                f"{TARGET_BYTES / 1e6:.0f} MB)",
                figure.html_bytes <= TARGET_BYTES,
            ),
        ]
    for figure in figures:
        if not figure.agree:
            found.append((f"{figure.store} {figure.runs:,}: the sides name different runs", False))
    return found


def render(figures: Sequence[Figure]) -> Table:
    table = Table(title="comparison report: flowscope vs mlflow.search_runs + pandas + matplotlib")
    columns = (
        "store",
        "runs",
        "flowscope HTML",
        "(data + render)",
        "Markdown+PNGs",
        "CSV",
        "seed's approach",
        "ratio",
        "HTML size",
        "CLI (new process)",
        "same best",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "store" else "right")
    for figure in figures:
        table.add_row(
            figure.store,
            f"{figure.runs:,}",
            f"{figure.flowscope_s:.2f} s",
            f"{figure.data_s:.2f} + {figure.html_s:.2f} s",
            f"{figure.markdown_s:.2f} s",
            f"{figure.csv_s:.2f} s",
            f"{figure.seed_s:.2f} s",
            f"{figure.ratio:.1f}x",
            f"{figure.html_bytes / 1e6:.2f} MB",
            "-" if figure.cli_s is None else f"{figure.cli_s:.2f} s",
            "yes" if figure.agree else "NO",
        )
    return table


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="1000,10000", help="comma-separated experiment sizes")
    parser.add_argument("--stores", default="sqlite", help="sqlite and/or postgres")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per size")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    check_sizes_and_stores(parser, args, fewest_runs=20)
    if args.repeats < 1:
        parser.error("--repeats needs 1 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # MLflow draws a progress bar per artifact read, on both sides: noise on the console.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in ("mlflow", "alembic"):  # store creation and migrations are noise here
        logging.getLogger(name).setLevel(logging.WARNING)
    console = Console(width=None if sys.stdout.isatty() else 160)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="flowscope-bench-report-") as tmp:
        for name in args.stores:
            root = Path(tmp) / name
            make = functools.partial(grid_rows, artifacts=root / "artifacts")
            with open_store(name, root, args.runs, console, make) as store:
                mlflow.set_tracking_uri(store.uri)
                warm_up(store, min(args.runs), root / "warm-up")
                for runs in args.runs:
                    figure = measure(store, runs, root / f"runs-{runs}", args.repeats)
                    figures.append(figure)
                    console.print(
                        f"{name}: {runs:,} runs: flowscope {figure.flowscope_s:.2f} s, "
                        f"seed's approach {figure.seed_s:.2f} s"
                    )
    console.print(render(figures))
    console.print(
        f"medians of {args.repeats} rounds each, alternating, from a new store object "
        "(flowscope's split is the median round's; imports are paid before timing, the CLI "
        "column pays them)"
    )
    checked = verdicts(figures)
    for text, met in checked:
        console.print(f"{'met' if met else 'MISSED'}: {text}")
    if not any(figure.store == "sqlite" and figure.runs == TARGET_RUNS for figure in figures):
        console.print(f"targets not checked: they are for {TARGET_RUNS:,} runs on SQLite")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "figures": [{**asdict(f), "ratio": f.ratio} for f in figures],
                    "targets": [{"target": text, "met": met} for text, met in checked],
                },
                indent=2,
            )
        )
    return 0 if all(met for _, met in checked) else 1


if __name__ == "__main__":
    sys.exit(main())
