"""The demo workspace: real training runs on the datasets scikit-learn ships.

Scenarios (each a task, i.e. an experiment):

- ``iris``: multiclass classification across the catalog's model types;
- ``breast-cancer``: binary classification with boosted models logging validation metrics
  per round, and the decision thresholds 0.5, 0.43 and 0.35; and a small Optuna study of
  LightGBM on it, run as ``flowscope tune`` runs one (trials pruned on their boosting
  rounds, the best configuration refit);
- ``wine-knn``: a grid over KNN's n_neighbors, weights, metric and algorithm;
- ``diabetes-quantile``: LightGBM quantile regression with pinball loss and coverage.

``iris-classifier`` and ``breast-cancer-classifier`` are registered with two versions each;
the demo policy promotes the breast-cancer model, and its production version is then served
in this process, as ``flowscope serve`` serves it, to single predictions, a batch upload
and a batch whose features drifted: the inference runs, drift included, that training
versus inference observability is about.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowscope.config import Settings
from flowscope.errors import FlowscopeError, MissingDependencyError, NotFoundError

if TYPE_CHECKING:
    import pandas as pd
    from fastapi import FastAPI

BREAST_CANCER_THRESHOLDS = (0.5, 0.43, 0.35)
# The lifecycle the demo applies to its breast-cancer model: which version serves, which
# waits in staging, which is retired, each decision recorded with its reasons.
DEMO_POLICY = """\
model: breast-cancer-classifier
stages:
  staging:
    gates: [accuracy >= 0.90]
    require: [signature, evaluation]
  production:
    gates: [accuracy >= 0.94, recall_1 >= 0.95]
    require: [signature, evaluation]
    beat: {metric: accuracy, min_difference: 0.0, alpha: 0.05}
archive:
  floor: [accuracy >= 0.90]
  replaced: [staging, production]
"""
# The demo's traffic to that production version. Single predictions are written as one
# inference run per window of DEMO_WINDOW predictions: windows this large keep the
# sampling noise of each feature's PSI well under the drift threshold.
DEMO_MODEL = "breast-cancer-classifier"
DEMO_SERVED = f"{DEMO_MODEL}@production"
SINGLE_PREDICTIONS = 400
DEMO_WINDOW = 200
BATCH_ROWS = 200
BATCH_FILE = "demo-batch.csv"
SHIFTED_BATCH_FILE = "demo-batch-shifted.csv"
# The shifted batch: a recalibrated scanner reads these features this many times too high,
# most values beyond anything in training, which the drift check must catch.
SHIFTED_FEATURES = ("mean_texture", "worst_texture", "mean_area")
SHIFT_FACTOR = 1.8
# The demo's study: few trials, so the demo stays quick, enough for the median pruner
# (which waits for 5 finished trials) to prune, and the best configuration refit but not
# registered (the demo registers its breast-cancer model from XGBoost and gradient boosting
# alone, as it does not register its LightGBM training run).
DEMO_STUDY = "breast-cancer-lightgbm"
DEMO_STUDY_TRIALS = 16
QUICK_DEMO_STUDY_TRIALS = 6


@dataclass
class Job:
    task: str
    dataset: str
    model_type: str
    params: dict[str, Any] = field(default_factory=dict)
    run_name: str | None = None
    register: str | None = None
    thresholds: tuple[float, ...] | None = None
    metric: str = "accuracy"  # what "best" means for the task


def demo_jobs(quick: bool = False) -> Iterator[Job]:
    """Every training run the demo makes, in order."""
    iris_models = ["random_forest", "lightgbm", "logistic_regression"]
    if not quick:
        iris_models += ["extra_trees", "gradient_boosting", "xgboost", "knn"]
    for model_type in iris_models:
        register = "iris-classifier" if model_type in ("random_forest", "lightgbm") else None
        yield Job("iris", "iris", model_type, register=register)

    cancer_models: list[tuple[str, dict[str, Any]]] = [
        ("xgboost", {"n_estimators": 150, "learning_rate": 0.1, "max_depth": 3}),
        ("gradient_boosting", {"n_estimators": 150, "learning_rate": 0.1}),
    ]
    if not quick:
        cancer_models.append(("lightgbm", {"n_estimators": 150, "learning_rate": 0.05}))
    for model_type, params in cancer_models:
        yield Job(
            "breast-cancer",
            "breast_cancer",
            model_type,
            params,
            register="breast-cancer-classifier" if model_type != "lightgbm" else None,
            thresholds=BREAST_CANCER_THRESHOLDS,
        )

    grid: dict[str, list[Any]] = {
        "n_neighbors": [3, 7, 15] if not quick else [5],
        "weights": ["uniform", "distance"],
        "metric": ["euclidean", "manhattan"],
        "algorithm": ["ball_tree", "brute"] if not quick else ["auto"],
    }
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        name = "knn-" + "-".join(str(value) for value in values)
        yield Job("wine-knn", "wine", "knn", params, run_name=name)

    for leaves in [15, 31] if not quick else [31]:
        yield Job(
            "diabetes-quantile",
            "diabetes",
            "lightgbm_quantile",
            {"num_leaves": leaves},
            run_name=f"quantile-leaves-{leaves}",
            metric="pinball_0.5",
        )


def seed_demo(
    settings: Settings,
    *,
    quick: bool = False,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> list[str]:
    """Run every demo job against ``settings``' store and return a summary: one line per
    task naming its best run."""
    from flowscope.modeling.data import load_dataset
    from flowscope.modeling.train import train

    jobs = list(demo_jobs(quick))
    frames: dict[str, tuple[Any, str | None]] = {}
    for done, job in enumerate(jobs):
        if on_progress:
            on_progress(done, len(jobs), f"{job.task}: {job.run_name or job.model_type}")
        if job.dataset not in frames:
            frames[job.dataset] = load_dataset(job.dataset)
        frame, target = frames[job.dataset]
        train(
            frame,
            str(target),  # every built-in dataset names its target
            job.model_type,
            job.params,
            task=job.task,
            run_name=job.run_name,
            thresholds=job.thresholds,
            register=job.register,
            dataset_name=job.dataset,
            settings=settings,
        )
    study = record_demo_study(settings, quick=quick, on_progress=on_progress)
    if on_progress:
        on_progress(len(jobs), len(jobs), "lifecycle")
    lifecycle = apply_demo_policy(settings)
    if on_progress:
        on_progress(len(jobs), len(jobs), "inference")
    inference = record_demo_inference(settings)
    if on_progress:
        on_progress(len(jobs), len(jobs), "done")
    return [*demo_summary(settings), study, lifecycle, inference]


def seeded_summary(settings: Settings) -> list[str]:
    """The summary of a workspace seeded before: each task's best run, and the demo's
    inference, recorded now if the workspace has none (it was seeded by a demo that
    recorded none)."""
    summary = demo_summary(settings)
    if not _demo_windows(settings):
        summary.append(record_demo_inference(settings))
    return summary


def record_demo_study(
    settings: Settings,
    *,
    quick: bool = False,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> str:
    """Tune LightGBM on breast cancer as ``flowscope tune --dataset breast_cancer --model
    lightgbm --task breast-cancer`` does, seeded, in Optuna's storage beside the store: the
    study :data:`DEMO_STUDY` (or, seeded once more, the next free ``DEMO_STUDY-<n>``), its
    trials child runs of its tuning run, the best refit. One summary line; without Optuna
    (the ``tune`` extra) the line says the study was left out and how to install it."""
    from flowscope.tuning.storage import default_storage_url

    try:
        from flowscope.tuning.catalog_study import TuneSpec, run_catalog_study
    except MissingDependencyError as exc:
        return f"breast-cancer study left out: {exc}"

    trials = QUICK_DEMO_STUDY_TRIALS if quick else DEMO_STUDY_TRIALS
    storage = default_storage_url(settings)
    spec = TuneSpec(
        dataset="breast_cancer",
        model="lightgbm",
        trials=trials,
        task="breast-cancer",
        study=_unused_study_name(storage, DEMO_STUDY),
        storage=storage,
        seed=0,
        sampler="tpe",
        pruner="median",
    )

    def tuned(done: int, total: int | None, best: float | None) -> None:
        if on_progress:
            on_progress(done, total or trials, f"breast-cancer: tuning lightgbm ({done} trials)")

    outcome = run_catalog_study(spec, settings, tuned if on_progress else None)
    counts, best = outcome.summary.counts, outcome.summary.best
    line = (
        f"breast-cancer study {outcome.study_name}: {counts['total']} trials "
        f"({counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed)"
    )
    if best is not None:
        line += f", best trial {best['number']} with {outcome.metric} = {best['value']:.4f}"
    if outcome.refit is not None:
        line += f", refit as run {outcome.refit.run_id}"
    return line


def _unused_study_name(storage_url: str, name: str) -> str:
    """``name``, or ``name-2``, ``name-3``... when a study in the storage has it: the demo
    seeded once more tunes anew instead of resuming a study whose trials are all done."""
    import optuna

    from flowscope.tuning.storage import open_storage

    storage = open_storage(storage_url, heartbeat_interval=None)
    try:
        taken = set(optuna.get_all_study_names(storage))
    finally:
        storage.engine.dispose()
    candidate, suffix = name, 1
    while candidate in taken:
        suffix += 1
        candidate = f"{name}-{suffix}"
    return candidate


def apply_demo_policy(settings: Settings) -> str:
    """Promote the demo's breast-cancer versions by :data:`DEMO_POLICY`; one summary line."""
    from flowscope.registry.policy import parse_policy
    from flowscope.registry.promotion import promote

    result = promote(
        settings, "breast-cancer-classifier", parse_policy(DEMO_POLICY, source="demo policy")
    )
    return f"breast-cancer-classifier lifecycle: {result.plan.summary()}"


def is_seeded(settings: Settings) -> bool:
    """True when the store already holds the demo's experiments."""
    from flowscope.mlflow_client import client_for

    client = client_for(settings)
    return all(client.get_experiment_by_name(job.task) for job in demo_jobs(quick=True))


def demo_summary(settings: Settings) -> list[str]:
    """One line per demo task naming its best run."""
    from flowscope.analysis import best_task_run
    from flowscope.analysis.query import reading_runs

    summary = []
    metrics = {job.task: job.metric for job in demo_jobs()}
    with reading_runs(settings) as store:
        for task, metric in metrics.items():
            result = best_task_run(store, settings, task, metric=metric)
            winner = result.winner
            summary.append(
                f"{task}: best run {winner['run_name']} ({winner['run_id']}) with {metric} = "
                f"{result.value:.4f} ({result.direction}imum over {result.considered} runs)"
            )
    return summary


def record_demo_inference(settings: Settings, *, seed: int = 0) -> str:
    """Serve :data:`DEMO_SERVED` in this process through the prediction service's own app
    and send it the demo's traffic: :data:`SINGLE_PREDICTIONS` single predictions, a batch
    upload of rows like the training data, and a batch with :data:`SHIFTED_FEATURES`
    scaled by :data:`SHIFT_FACTOR`. The service's monitor writes them as inference runs
    to ``breast-cancer-inference`` and, as the service stops, writes its last window and
    waits for every run's delivery. One summary line, read back from the store."""
    import asyncio

    from flowscope.modeling.data import load_dataset
    from flowscope.serving import create_serving_app

    frame, target = load_dataset("breast_cancer")
    features = frame.drop(columns=[str(target)])
    singles, batch, shifted = _demo_traffic(features, seed)
    # Windows close by their size only, so every run of this traffic is the same on every
    # machine; the monitor writes in its own thread, sparing a helper process's start-up.
    served = settings.model_copy(
        update={
            "monitor": True,
            "monitor_process": False,
            "monitor_per_request": False,
            "monitor_window_size": DEMO_WINDOW,
            "monitor_window_seconds": 24 * 3600.0,
        }
    )
    before = {window["run_id"] for window in _demo_windows(settings)}
    app = create_serving_app(served, DEMO_SERVED)
    uploads = {BATCH_FILE: batch, SHIFTED_BATCH_FILE: shifted}
    asyncio.run(_send_traffic(app, singles, uploads))
    windows = [w for w in _demo_windows(settings) if w["run_id"] not in before]
    expected = SINGLE_PREDICTIONS // DEMO_WINDOW + len(uploads)
    return _inference_line(windows, settings.drift_threshold, expected)


def _demo_traffic(features: pd.DataFrame, seed: int) -> tuple[list[dict[str, Any]], bytes, bytes]:
    """Single records, a batch and its shifted twin (as CSV), drawn from ``features``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(features), SINGLE_PREDICTIONS)
    singles = features.iloc[picks].to_dict(orient="records")
    batch = features.iloc[rng.choice(len(features), BATCH_ROWS, replace=False)]
    shifted = batch.assign(**{name: batch[name] * SHIFT_FACTOR for name in SHIFTED_FEATURES})
    return (
        [{str(key): value for key, value in row.items()} for row in singles],
        batch.to_csv(index=False).encode(),
        shifted.to_csv(index=False).encode(),
    )


async def _send_traffic(
    app: FastAPI, singles: list[dict[str, Any]], uploads: dict[str, bytes]
) -> None:
    """Send the requests one by one, as clients of ``flowscope serve`` would; the app's
    lifespan starts the service and, at its end, closes the monitor (see above)."""
    import httpx

    # in process, as localhost: a Host the service answers whatever allowed_hosts says
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost") as client,
    ):
        for record in singles:
            _answered(await client.post("/predict", json=record))
        for filename, body in uploads.items():
            _answered(
                await client.post(
                    "/predict/batch",
                    params={"filename": filename},
                    content=body,
                    headers={"Content-Type": "text/csv"},
                )
            )


def _answered(response: Any) -> None:
    if response.status_code != 200:
        raise FlowscopeError(
            f"the demo's prediction service refused a request ({response.status_code}): "
            f"{response.text[:300]}"
        )


def _demo_windows(settings: Settings) -> list[dict[str, Any]]:
    """The inference windows of the demo's served model; none before it is registered."""
    from flowscope.serving import inference_history

    try:
        history = inference_history(settings, DEMO_MODEL, limit=1000)
    except NotFoundError:
        return []
    windows: list[dict[str, Any]] = history["windows"]
    return windows


def _inference_line(windows: list[dict[str, Any]], threshold: float, expected: int) -> str:
    singles = [w for w in windows if w["type"] != "batch"]
    parts = [
        f"{sum(int(w['metrics'].get('samples', 0)) for w in singles)} single predictions "
        f"in {len(singles)} windows"
    ]
    for window in (w for w in windows if w["type"] == "batch"):
        drifted = [name for name, psi in window["drift"].items() if psi > threshold]
        parts.append(
            f"batch {window['input_file']} ({int(window['metrics'].get('samples', 0))} rows, "
            + (f"drift in {', '.join(sorted(drifted))})" if drifted else "no drift)")
        )
    line = f"{DEMO_SERVED} inference: " + "; ".join(parts)
    if len(windows) < expected:
        line += (
            f" ({expected - len(windows)} inference runs are still in the journal; "
            "`flowscope sync` delivers them)"
        )
    return line
