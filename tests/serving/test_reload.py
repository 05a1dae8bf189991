"""Hot reload: the alias moves while clients keep posting, and no request fails."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import httpx
import numpy as np

from flowscope.serving import create_serving_app
from tests.serving.conftest import LiveServer, Registry, iris_features, records

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def test_alias_moves_under_concurrent_load_with_zero_failed_requests(registry: Registry) -> None:
    name = registry.fresh("random_forest")  # version 1: a random forest
    assert registry.register(name, registry.run_ids["xgboost"], alias=None) == "2"
    X = iris_features()
    rows = records(X)
    expected = {
        "1": registry.pipeline("random_forest").predict_proba(X),
        "2": registry.pipeline("xgboost").predict_proba(X),
    }
    settings = registry.using(serve_reload_interval=0.1, monitor=False)
    app = create_serving_app(settings, f"{name}@champion")
    stop = threading.Event()
    answers: list[list[tuple[int, int, str, list[float]]]] = [[] for _ in range(6)]
    answered = threading.Condition()  # told of every answer, and of a client that ends
    ended: list[int] = []

    def client_loop(slot: int, base_url: str) -> None:
        try:
            with httpx.Client(base_url=base_url, timeout=30) as http:
                index = slot
                while not stop.is_set():
                    row = index % len(rows)
                    answer = http.post("/predict", json=rows[row])
                    body: dict[str, Any] = answer.json()
                    probabilities = (
                        list(body["predictions"][0]["probabilities"].values())
                        if (answer.status_code == 200)
                        else []
                    )
                    with answered:
                        answers[slot].append(
                            (answer.status_code, row, body.get("version"), probabilities)
                        )
                        answered.notify_all()
                    index += len(answers)
        finally:
            with answered:
                ended.append(slot)
                answered.notify_all()

    def wait_until_each_has(version: str, count: int) -> None:
        """Until every client has been answered ``count`` times by ``version``; a client
        that stops first (its request failed) fails the test at once."""
        with answered:
            answered.wait_for(
                lambda: (
                    bool(ended)
                    or all(sum(a[2] == version for a in slot) >= count for slot in answers)
                ),
                60,  # a safety net: the clients are answered many times a second
            )
            assert not ended, f"client {ended} stopped"
            counts = [sum(a[2] == version for a in slot) for slot in answers]
        assert min(counts) >= count, f"answers by version {version}: {counts}"

    with LiveServer(app) as server:
        threads = [
            threading.Thread(target=client_loop, args=(slot, server.url)) for slot in range(6)
        ]
        for thread in threads:
            thread.start()
        try:
            wait_until_each_has("1", 5)
            registry.client.set_registered_model_alias(name, "champion", "2")
            assert app.state.service.holder.wait_for_version("2", 60), "never reloaded"
            wait_until_each_has("2", 20)  # and a while after
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
        with httpx.Client(base_url=server.url) as http:
            model = http.get("/model").json()
            metrics = http.get("/metrics").text
    every = [answer for slot in answers for answer in slot]
    assert len(every) > 100
    assert all(status == 200 for status, *_ in every), {a[0] for a in every}
    assert {version for _, _, version, _ in every} == {"1", "2"}
    for slot in answers:
        versions = [version for _, _, version, _ in slot]
        first_new = versions.index("2")
        assert set(versions[first_new:]) == {"2"}  # once answered by v2, never by v1 again
        assert versions[-1] == "2"
    for _, row, version, probabilities in every:
        np.testing.assert_allclose(probabilities, expected[version][row], rtol=1e-9, atol=1e-12)
    assert model["version"] == "2" and model["alias"] == "champion"
    assert "flowscope_model_reloads_total 1" in metrics


def test_a_pinned_version_is_never_reloaded(registry: Registry) -> None:
    """A service pinned to version 1 and one following the alias, side by side: once the
    follower has moved to the alias's new version, the pinned one still answers with 1."""
    name = registry.fresh("random_forest")  # version 1, the champion
    settings = registry.using(serve_reload_interval=0.05, monitor=False)
    row = records(iris_features().head(1))[0]
    with (
        TestClient(create_serving_app(settings, f"{name}/1")) as pinned,
        TestClient(create_serving_app(settings, f"{name}@champion")) as follower,
    ):
        registry.register(name, registry.run_ids["lightgbm"], alias="champion")  # version 2
        following = follower.app.state.service.holder  # type: ignore[attr-defined]
        assert following.wait_for_version("2", 60), "the follower never moved to version 2"
        assert follower.post("/predict", json=row).json()["version"] == "2"
        answer = pinned.post("/predict", json=row).json()
    assert answer["version"] == "1"
