"""A registered classifier trained on text categories and missing values, for the
prediction page's tests: version 1 behind the alias ``champion``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.modeling.train import train
from flowscope.tracking.models import load_model
from tests.conftest import make_settings

MODEL = "churn"
TARGET = "label"
FEATURES = ["tenure", "spend", "plan", "region"]


def churn_frame(rows: int = 600, seed: int = 0) -> pd.DataFrame:
    """Two number columns and two text ones, with gaps in a number and a text column, and
    a yes/no label that depends on them."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, size=rows).astype(float)
    spend = rng.normal(50, 20, size=rows).round(2)  # negative values too
    plan = rng.choice(["basic", "plus", "pro"], size=rows, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east"], size=rows).astype(object)
    score = -tenure / 24 + spend / 40 + (plan == "basic") * 1.0 + rng.normal(0, 0.5, rows)
    frame = pd.DataFrame({"tenure": tenure, "spend": spend, "plan": plan, "region": region})
    frame.loc[rng.random(rows) < 0.1, "tenure"] = np.nan
    frame.loc[rng.random(rows) < 0.1, "region"] = None
    frame[TARGET] = np.where(score > np.median(score), "yes", "no")
    return frame


@dataclass
class Churn:
    settings: Settings
    run_id: str
    frame: pd.DataFrame
    pipeline: Any

    @property
    def features(self) -> pd.DataFrame:
        return self.frame[FEATURES]


def train_churn(root: Path) -> Churn:
    settings = make_settings(
        root,
        f"sqlite:///{root / 'mlflow.db'}",
        flush_timeout=30.0,
        workbench_dir=root / "workbench",
    )
    frame = churn_frame()
    result = train(
        frame,
        TARGET,
        "random_forest",
        {"n_estimators": 20},
        task="churn",
        register=MODEL,
        settings=settings,
        explain=False,
    )
    assert result.run_id is not None
    client = MlflowClient(settings.tracking_uri)
    client.set_registered_model_alias(MODEL, "champion", "1")
    local = client.download_artifacts(result.run_id, "model", str(root / "model-copy"))
    return Churn(settings, result.run_id, frame, load_model(local))
