"""A KNN grid the comparison report's tests share (the report itself and its dashboard
page): 12 runs trained through flowscope's own training path on breast cancer, one named
like a script, the winner by log_loss registered as it trains; and the command that
writes the report."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

from flowscope.config import Settings
from tests.conftest import make_settings

TASK = "cancer-knn"
SCRIPT = "<script>alert(1)</script>"
GRID = {
    "n_neighbors": [1, 7, 25],
    "weights": ["uniform", "distance"],
    "metric": ["euclidean", "manhattan"],
}
REGISTERED = (25, "distance", "euclidean")  # the winner by log_loss, registered as it trains


def train_knn_grid(root: Path) -> Settings:
    """Train every combination of :data:`GRID` as a run of :data:`TASK` in a SQLite store
    under ``root``; returns its settings."""
    from flowscope.modeling.data import load_dataset
    from flowscope.modeling.train import train

    settings = make_settings(root, f"sqlite:///{root / 'mlflow.db'}")
    frame, target = load_dataset("breast_cancer")
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values, strict=True))
        name = (
            SCRIPT
            if values == (25, "uniform", "manhattan")
            else "knn-" + "-".join(map(str, values))
        )
        train(
            frame,
            str(target),
            "knn",
            params,
            task=TASK,
            run_name=name,
            test_size=0.3,
            settings=settings,
            explain=False,
            register=TASK if values == REGISTERED else None,
        )
    return settings


def compare_command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """``flowscope report compare ARGS`` on ``settings``' store, in a process of its own
    with none of the caller's flowscope or MLflow settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWSCOPE_", "MLFLOW_"))}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "flowscope.cli",
            "report",
            "compare",
            *args,
            "--tracking-uri",
            settings.tracking_uri,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
