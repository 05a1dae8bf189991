"""Real registered models for the serving tests, and a real uvicorn server in process."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.modeling.data import load_builtin
from flowscope.modeling.train import train
from flowscope.tracking.models import load_model
from tests.conftest import make_settings
from tests.servers import free_port

IRIS_MODELS = ("random_forest", "xgboost", "lightgbm")
SYNTH_FEATURES = ["x0", "x1", "x2", "x3", "x4", "region", "member"]


def synthetic_frame(rows: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Five numeric features, a categorical and a boolean one, and a yes/no label: large
    enough that a held-out sample's PSI reflects drift, not sampling noise."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=rows, n_features=5, n_informative=3, random_state=seed)
    frame = pd.DataFrame(X, columns=SYNTH_FEATURES[:5])
    rng = np.random.default_rng(seed)
    frame["region"] = rng.choice(["north", "south", "east"], size=rows, p=[0.5, 0.3, 0.2])
    frame["member"] = rng.random(rows) < 0.4
    frame["label"] = np.where(y == 1, "yes", "no")
    return frame


class Registry:
    """A SQLite store holding iris models of three types and a synthetic one, each
    registered with alias ``champion`` on version 1."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = MlflowClient(settings.tracking_uri)
        self.run_ids: dict[str, str] = {}
        self._models: dict[str, Any] = {}
        self._count = 0

    def register(self, name: str, run_id: str, alias: str | None = "champion") -> str:
        """A new version of ``name`` from ``run_id``'s model (the model is not retrained)."""
        source = self.client.get_run(run_id).info.artifact_uri + "/model"
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name)
        version = self.client.create_model_version(name, source, run_id).version
        if alias:
            self.client.set_registered_model_alias(name, alias, str(version))
        return str(version)

    def fresh(self, kind: str = "random_forest") -> str:
        """A model name of its own for one test (its inference runs are only its own)."""
        self._count += 1
        name = f"{kind}-{self._count}"
        self.register(name, self.run_ids[kind])
        return name

    def pipeline(self, kind: str) -> Any:
        """The logged model of ``kind``, loaded the safe way, to compare answers with."""
        if kind not in self._models:
            folder = self.settings.journal_dir.parent / "models" / kind
            local = self.client.download_artifacts(self.run_ids[kind], "model", str(folder))
            self._models[kind] = load_model(local)
        return self._models[kind]

    def using(self, **overrides: Any) -> Settings:
        return self.settings.model_copy(update=overrides)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    root = tmp_path_factory.mktemp("serving")
    settings = make_settings(root, f"sqlite:///{root / 'mlflow.db'}", flush_timeout=30.0)
    found = Registry(settings)
    iris, target = load_builtin("iris")
    for kind in IRIS_MODELS:
        result = train(iris, target, kind, {"n_estimators": 25}, task="iris", settings=settings)
        assert result.run_id is not None
        found.run_ids[kind] = result.run_id
    synth = synthetic_frame()
    result = train(
        synth.iloc[:3000],
        "label",
        "random_forest",
        {"n_estimators": 30},
        task="synth",
        settings=settings,
    )
    assert result.run_id is not None
    found.run_ids["synthetic"] = result.run_id
    return found


def iris_features() -> pd.DataFrame:
    frame, target = load_builtin("iris")
    return frame.drop(columns=[target])


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def inference_runs(settings: Settings, name: str, task: str = "iris") -> list[Any]:
    client = MlflowClient(settings.tracking_uri)
    experiment = client.get_experiment_by_name(f"{task}-inference")
    if experiment is None:
        return []
    return list(
        client.search_runs(
            [experiment.experiment_id], filter_string=f"tags.`flowscope.model_name` = '{name}'"
        )
    )


class LiveServer:
    """A real uvicorn server on a free loopback port, in a thread of the test process, so
    that concurrent clients reach one event loop as in production."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(60)
