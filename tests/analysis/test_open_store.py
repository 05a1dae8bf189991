"""The dashboard opens the store the one way every part of flowscope does: a new SQLite store
is created whole under the lock, never migrated in place beside a training script.
(PostgreSQL stores are opened by every test in test_query.py run on ``store_uri``.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from flowscope.analysis.query import open_run_store
from tests.conftest import make_settings
from tests.tracking import workers


@pytest.mark.slow
def test_a_dashboard_creating_the_store_beside_a_training_script_makes_it_whole(
    tmp_path: Path, sqlite_uri: str
) -> None:
    database = Path(sqlite_uri.removeprefix("sqlite:///"))
    env = workers.environment(tmp_path, sqlite_uri)
    marker = tmp_path / "held"
    dashboard = workers.start(workers.holding_creation(env, marker), "open", "dashboard")
    workers.wait_until_held(dashboard, marker)
    assert not database.exists()  # MLflow's migrations run in a file beside it
    training = workers.start(env, "log", "beside", "run", "--steps=300", "--metrics=3")
    workers.release(marker)
    out, err = dashboard.communicate(timeout=120)
    assert dashboard.returncode == 0, err[-3000:]
    assert out.split() == ["opened", "Default"]
    out, err = training.communicate(timeout=300)
    assert training.returncode == 0, err[-3000:]
    assert out.split()[:2] == ["logged", "delivered"]

    client = MlflowClient(sqlite_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("beside").experiment_id])
    points = Counter(
        (p.key, p.step, p.value)
        for key in ("m0", "m1", "m2")
        for p in client.get_metric_history(run.info.run_id, key)
    )
    assert points == Counter(
        (f"m{i}", step, float(step * 1000 + i)) for step in range(300) for i in range(3)
    )
    store = open_run_store(make_settings(tmp_path, sqlite_uri))
    assert {e["name"]: e["runs"] for e in store.experiments()}["beside"] == 1
