"""The lifecycle on the dashboard: the model page, the history and the policy preview."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest

from flowscope.config import Settings
from flowscope.registry import load_policy, promote
from tests.registry.helpers import HEART_POLICY, heart_versions, snapshot

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    from flowscope.web import create_app

    heart_versions(settings)
    promote(settings, "heart-disease", load_policy(HEART_POLICY))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def test_model_page_shows_lifecycle_history_and_the_preview_form(client: TestClient) -> None:
    listed = client.get("/models.json").json()["models"]
    assert [(m["name"], m["aliases"]) for m in listed] == [("heart-disease", {"production": 2})]
    assert client.get("/models").status_code == 200
    data = client.get("/models/heart-disease.json").json()
    assert [v["lifecycle"] for v in data["versions"]] == ["production", "archived"]
    [span] = data["lifecycle"]["production"]
    assert span["version"] == 2 and span["until"] is None
    page = client.get("/models/heart-disease")
    assert page.status_code == 200
    assert 'id="alias-history"' in page.text and "@production was free" in page.text
    assert 'action="/models/heart-disease/preview"' in page.text
    assert "flowscope.lifecycle.decision=" not in page.text  # the JSON tag stays off the page


def test_history_page_and_its_json_twin(client: TestClient) -> None:
    data = client.get("/models/heart-disease/history.json").json()
    assert data["ok"] and [d["outcome"] for d in data["decisions"]] == ["applied"]
    assert data["aliases"]["production"][0]["version"] == 2
    page = client.get("/models/heart-disease/history")
    assert page.status_code == 200 and "Lifecycle history of heart-disease" in page.text
    assert page.headers["link"].startswith("</models/heart-disease/history.json>")
    assert client.get("/models/nope/history.json").status_code == 404


def test_preview_is_a_dry_run_from_yaml_or_a_form(client: TestClient, settings: Settings) -> None:
    before = snapshot(settings)
    stricter = HEART_POLICY.read_text().replace("accuracy >= 0.91", "accuracy >= 0.95")
    raw = client.post(
        "/models/heart-disease/preview.json",
        content=stricter,
        headers={"content-type": "application/yaml"},
    ).json()
    assert raw["ok"] and raw["outcome"] == "dry-run"
    assert raw["aliases_after"] == {"production": 2}  # a holder is not demoted by a stricter gate
    holder = raw["decisions"][1]
    assert holder["after"] == "production"
    kept = "keeps @production though it now fails its gates: accuracy = 0.918 fails"
    assert kept in holder["reason"]
    form = client.post("/models/heart-disease/preview", data={"policy": stricter})
    assert form.status_code == 200 and 'id="preview-decisions"' in form.text
    assert "accuracy &gt;= 0.95" in form.text  # the textarea keeps the policy for editing
    assert snapshot(settings) == before
    assert len(client.get("/models/heart-disease/history.json").json()["decisions"]) == 1


def test_preview_errors_are_json_with_a_status(client: TestClient) -> None:
    bad = client.post(
        "/models/heart-disease/preview.json",
        content="stages:\n  prod: {}\n",
        headers={"content-type": "application/yaml"},
    )
    assert bad.status_code == 400
    assert bad.json() == {
        "ok": False,
        "error": "policy (preview): stages.prod (line 2): unknown key",
        "status": 400,
    }
    missing = client.post("/models/nope/preview.json", content=HEART_POLICY.read_text())
    assert missing.status_code == 404
    page = client.post("/models/heart-disease/preview", data={"policy": "stages: ["})
    assert page.status_code == 400 and "not valid YAML" in page.text


def test_apply_from_the_page_moves_aliases_and_records_the_decision(
    settings: Settings,
) -> None:
    from flowscope.web import create_app

    heart_versions(settings)  # two versions, no alias yet
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        bad = client.post("/models/heart-disease/promote", data={"policy": "stages: ["})
        assert bad.status_code == 400 and "not valid YAML" in bad.text
        assert client.get("/models.json").json()["models"][0]["aliases"] == {}
        applied = client.post(
            "/models/heart-disease/promote",
            data={"policy": HEART_POLICY.read_text()},
            follow_redirects=False,
        )
        assert applied.status_code == 303
        assert applied.headers["location"] == "/models/heart-disease/history"
        history = client.get("/models/heart-disease/history.json").json()
        again = client.post(
            "/models/heart-disease/promote.json",
            content=HEART_POLICY.read_text(),
            headers={"content-type": "application/yaml"},
        ).json()
        page = client.get("/models/heart-disease")
    assert [d["outcome"] for d in history["decisions"]] == ["applied"]
    assert history["aliases"]["production"][0]["version"] == 2
    assert again["ok"] and again["outcome"] == "no-op"
    assert 'id="apply-policy"' in page.text
