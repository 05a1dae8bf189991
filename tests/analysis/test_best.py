"""One ranking rule for the best run: NaN and missing left out, ties to the earliest start,
then the smaller run id. The SQL store (ranking in the database) and the client store
(ranking in Python) give the same BestRun for the same runs."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from flowscope.analysis.best import BestRun, best_run
from flowscope.analysis.query import ClientRunStore, SqlRunStore
from flowscope.errors import FlowscopeError
from tests.conftest import make_settings

T0 = 1_700_000_000_000
NAN = float("nan")
# name: (start offset in s, acc by step, kind). The last value is what "last" ranks by.
RUNS: dict[str, tuple[int, list[float] | None, str | None]] = {
    "a": (1, [0.5, 0.9], None),
    "b": (1, [0.9], None),  # a, b and c share the value and the start: the run id decides
    "c": (1, [0.9], "training"),
    "d": (2, [0.95, 0.9], None),  # the same last value, started later
    "e": (0, [0.8], None),
    "f": (0, [0.99, NAN], None),  # NaN last: out for "last", 0.99 for "max"
    "g": (0, None, None),  # no acc at all
    "h": (3, [NAN], None),  # only NaN: out for every value
    "i": (0, [0.97, 0.9], "trial"),  # not a training run; started first
    "j": (4, [0.3, 0.1], "training"),
}


@dataclass
class Seeded:
    experiment_id: str
    ids: dict[str, str]  # run name -> run id
    sql: SqlRunStore
    client: ClientRunStore


@pytest.fixture
def seeded(tmp_path: Path, store_uri: str) -> Iterator[Seeded]:
    settings = make_settings(tmp_path, store_uri)
    client = MlflowClient(settings.tracking_uri)
    experiment = client.create_experiment(f"best-{uuid.uuid4().hex[:8]}")
    ids = {}
    for name, (offset, history, kind) in RUNS.items():
        start = T0 + offset * 1000
        tags = {"flowscope.kind": kind} if kind else {}
        run = client.create_run(experiment, start_time=start, tags=tags, run_name=name)
        points = [Metric("acc", v, start + step, step) for step, v in enumerate(history or [])]
        client.log_batch(run.info.run_id, metrics=[*points, Metric("loss", 1.0, start, 0)])
        ids[name] = run.info.run_id
    sql = SqlRunStore(settings)
    yield Seeded(experiment, ids, sql, ClientRunStore(settings))
    sql.close()


def _facts(best: BestRun) -> dict[str, Any]:
    """Everything a BestRun says, with NaN made comparable."""

    def plain(row: Any) -> dict[str, Any]:
        return {k: "nan" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}

    facts = best.as_dict()
    facts["winner"] = plain(best.winner)
    facts["runners_up"] = [plain(row) for row in best.runners_up]
    facts["ranking"] = [plain(row) for row in best.ranking]
    facts["scores"] = best.scores
    return facts


def _names(seeded: Seeded, best: BestRun) -> list[str]:
    by_id = {run_id: name for name, run_id in seeded.ids.items()}
    return [by_id[str(row["run_id"])] for row in best.ranking]


def test_sql_and_client_stores_give_the_same_best_run(seeded: Seeded) -> None:
    cases = 0
    for value in ("last", "min", "max"):
        for direction in ("max", "min"):
            for kind in ("training", None, "trial"):
                for runners_up in (0, 2, 20):
                    query: dict[str, Any] = {
                        "metric": "acc",
                        "direction": direction,
                        "value": value,
                        "kind": kind,
                        "runners_up": runners_up,
                    }
                    sql = seeded.sql.best([seeded.experiment_id], **query)
                    client = seeded.client.best([seeded.experiment_id], **query)
                    assert _facts(sql) == _facts(client), query
                    cases += 1
    assert cases == 54


def test_ties_and_nan_by_the_rule(seeded: Seeded) -> None:
    abc = sorted("abc", key=lambda name: seeded.ids[name])
    for store in (seeded.sql, seeded.client):
        last = store.best([seeded.experiment_id], metric="acc", runners_up=9)
        # 0.9 is shared by a, b, c (start 1) and d (start 2); f and h end on NaN, g has none
        assert _names(seeded, last) == [*abc, "d", "e", "j"]
        assert last.scores == [0.9, 0.9, 0.9, 0.9, 0.8, 0.1]
        assert (last.considered, last.without_metric) == (9, 3)
        assert last.tie_break == "4 runs share acc = 0.9; the earliest started wins"

        highest = store.best([seeded.experiment_id], metric="acc", value="max", runners_up=9)
        assert _names(seeded, highest) == ["f", "d", *abc, "e", "j"]
        assert highest.value == 0.99 and highest.tie_break is None
        assert math.isnan(highest.winner["metrics.acc"])  # the row shows the last value
        assert highest.without_metric == 2  # g and h

        lowest = store.best(
            [seeded.experiment_id], metric="acc", value="min", direction="min", runners_up=1
        )
        assert _names(seeded, lowest) == ["j", "a"]
        assert lowest.scores == [0.1, 0.5]

        everything = store.best([seeded.experiment_id], metric="acc", kind=None)
        assert everything.tie_break == "5 runs share acc = 0.9; the earliest started wins"
        assert _names(seeded, everything)[0] == "i"  # the trial started first

        with pytest.raises(FlowscopeError) as raised:
            store.best([seeded.experiment_id], metric="acc", filter_string="metrics.acc > 2")
        assert raised.value.message == (
            "no run matching 'metrics.acc > 2' has the metric 'acc' (0 runs looked at)"
        )
        with pytest.raises(FlowscopeError, match="has the metric 'nope' \\(9 runs looked at\\)"):
            store.best([seeded.experiment_id], metric="nope")


def test_best_run_does_not_depend_on_the_order_of_rows() -> None:
    rows = [
        {"run_id": f"r{i}", "start_time": T0 + (i % 3), "metrics.acc": [0.9, 0.8, NAN][i % 3]}
        for i in range(12)
    ]
    rows.append({"run_id": "missing", "start_time": T0})
    expected = best_run(rows, "acc", runners_up=20)
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert best_run(shuffled, "acc", runners_up=20) == expected
    assert [row["run_id"] for row in expected.ranking[:2]] == ["r0", "r3"]
    assert (expected.considered, expected.without_metric) == (13, 5)
    assert expected.tie_break == "4 runs share acc = 0.9; the earliest started wins"


def test_bad_questions_are_clear_errors() -> None:
    with pytest.raises(FlowscopeError, match="direction must be 'max' or 'min', not 'up'"):
        best_run([], "acc", "up")
    with pytest.raises(FlowscopeError, match="no run has the metric 'acc' \\(0 runs"):
        best_run([], "acc")
