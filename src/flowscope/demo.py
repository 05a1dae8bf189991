"""The demo workspace: real training runs on the datasets scikit-learn ships.

Scenarios (each a task, i.e. an experiment):

- ``iris``: multiclass classification across the catalog's model types;
- ``breast-cancer``: binary classification with boosted models logging validation metrics
  per round, and the decision thresholds 0.5, 0.43 and 0.35;
- ``wine-knn``: a grid over KNN's n_neighbors, weights, metric and algorithm;
- ``diabetes-quantile``: LightGBM quantile regression with pinball loss and coverage.

``iris-classifier`` and ``breast-cancer-classifier`` are registered with two versions each.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from flowscope.config import Settings

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
    if on_progress:
        on_progress(len(jobs), len(jobs), "lifecycle")
    lifecycle = apply_demo_policy(settings)
    if on_progress:
        on_progress(len(jobs), len(jobs), "done")
    return [*demo_summary(settings), lifecycle]


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
    from flowscope.analysis.runs import client_for

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
