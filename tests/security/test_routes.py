"""Every route of ``flowscope server --auth`` is guarded, proved on a real server.

The routes are read from the apps themselves (MLflow's Flask ``url_map`` with the validator
its basic-auth app checks, the FastAPI routes around it, the dashboard's routes under
``/flowscope`` with its jobs API, ingest endpoint and login and token routes), so a new
route is tested the day it is added. Path parameters are filled from one table keyed by
parameter name with alice's resources. An anonymous request is refused with 401 on every
route but the public ones, listed exactly; bob, who may see nothing of alice's, is refused
with 403 on every route about her experiment, run, model, job or study, where alice is not;
and no list, search, comparison, report or export shows bob what is hers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from flowscope.web.access import RULES
from tests.security.auth_routes import Filler, each_request, request_key
from tests.server import auth_fixtures
from tests.server.auth_fixtures import (
    ALICE,
    BOB,
    EXPERIMENT,
    MODEL,
    SPARE_MODEL,
    AuthWorld,
    basic,
    server_routes,
)

pytestmark = [pytest.mark.server, pytest.mark.postgres, pytest.mark.slow]

auth_world = auth_fixtures.auth_world
PREFIX = "/flowscope"
# Whoever asks gets these: the health check, MLflow's capability discovery (no tenant data
# in it, by MLflow's design), the dashboard's login form and the redirect to its home page.
PUBLIC = {
    "GET /health",
    "GET /api/3.0/mlflow/server-info",
    "GET /ajax-api/3.0/mlflow/server-info",
    "GET /flowscope",  # a redirect to /flowscope/experiments, which asks for a sign-in
    "GET /flowscope/login",
    "POST /flowscope/login",
    "GET /static-files/<path:path>",  # MLflow's UI's static files
}
# The static files of both UIs, each a mount or a catch-all: a real file of each is public.
PUBLIC_FILES = ("/flowscope/static/app.css", "/static-files/favicon.ico")
# MLflow validators about an experiment, a run or a registered model (and its versions):
# bob, with no permission on alice's, is refused by each.
RESOURCE_VALIDATOR = re.compile(r"experiment|run|model")
NOT_ABOUT_ALICE = re.compile(
    r"create_experiment$|create_registered_model$|search_model_versions|gateway|"
    r"prompt_optimization|trace|promptlab"
)
DASHBOARD_RESOURCES = ("experiment", "run", "model", "job", "runs_query")


@pytest.fixture(scope="module")
def routes(auth_world: AuthWorld) -> list[dict[str, Any]]:
    return server_routes(auth_world)


@pytest.fixture(scope="module")
def requests_of(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return each_request(routes)


def _about_alice(request: dict[str, Any]) -> bool:
    """Whether a route is about one experiment, run, model, job or study."""
    if request["app"] == "dashboard":
        rule = RULES.get(
            request_key(request["method"], request["path"].removeprefix(PREFIX) or "/")
        )
        return rule is not None and rule.resource in DASHBOARD_RESOURCES
    if request["app"] == "mlflow":
        validator = request["validators"].get(request["method"]) or ""
        return bool(RESOURCE_VALIDATOR.search(validator)) and not NOT_ABOUT_ALICE.search(validator)
    return "mlflow-artifacts" in request["path"]  # FastAPI's artifact routes


@pytest.fixture
def alice(auth_world: AuthWorld) -> Iterator[httpx.Client]:
    with auth_world.client(basic(ALICE)) as client:
        yield client


@pytest.fixture
def bob(auth_world: AuthWorld) -> Iterator[httpx.Client]:
    with auth_world.client(basic(BOB)) as client:
        yield client


def test_every_route_refuses_an_anonymous_request_but_the_public_ones(
    auth_world: AuthWorld, requests_of: list[dict[str, Any]]
) -> None:
    filler = Filler(auth_world)
    before = auth_world.counts()
    answered: dict[str, int] = {}
    with auth_world.client() as anonymous:
        for request in requests_of:
            key = request_key(request["method"], request["path"])
            answered[key] = filler.send(anonymous, request["method"], request["path"]).status_code
        for path in PUBLIC_FILES:
            assert anonymous.get(path).status_code == 200, path
        home = anonymous.get(PREFIX)
        assert home.status_code == 307
        assert home.headers["location"] == f"{PREFIX}/experiments"
        assert anonymous.get(home.headers["location"]).status_code == 401
    not_refused = {key: status for key, status in answered.items() if status != 401}
    assert set(not_refused) == PUBLIC, not_refused
    assert auth_world.counts() == before


def test_every_dashboard_route_has_a_permission_rule(routes: list[dict[str, Any]]) -> None:
    """A route without a rule is refused to everyone but admins: a forgotten one shows up
    here rather than as a page nobody can open."""
    dashboard = {
        request_key(method, route["path"].removeprefix(PREFIX) or "/")
        for route in routes
        if route["app"] == "dashboard" and route["kind"] == "route"
        for method in route["methods"]
    }
    assert dashboard - set(RULES) == set(), "routes without a rule in flowscope.web.access"
    assert set(RULES) - dashboard == set(), "rules of routes that no longer exist"


def test_bob_is_refused_every_route_about_alices_resources(
    auth_world: AuthWorld, requests_of: list[dict[str, Any]], bob: httpx.Client
) -> None:
    """MLflow answers 403 (not 404) for an experiment, run or model bob may not see, and so
    does the dashboard; the searches filter instead (see the leak tests below)."""
    filler = Filler(auth_world)
    about = [request for request in requests_of if _about_alice(request)]
    assert len(about) > 100  # MLflow's and the dashboard's, both API versions
    before = auth_world.counts()
    answered = {
        request_key(r["method"], r["path"]): filler.send(bob, r["method"], r["path"]) for r in about
    }
    not_refused = {
        key: (answer.status_code, answer.text[:200])
        for key, answer in answered.items()
        if answer.status_code != 403
    }
    assert not_refused == {}
    for key, answer in answered.items():
        _shows_nothing_of_alices(auth_world, answer, key)
    assert auth_world.counts() == before


def test_alice_may_read_what_bob_may_not(
    auth_world: AuthWorld, requests_of: list[dict[str, Any]], alice: httpx.Client
) -> None:
    """The same reading requests bob was refused are not refused to alice: the 403s above
    are about permissions, not about malformed requests."""
    filler = Filler(auth_world)
    reads = [
        request for request in requests_of if _about_alice(request) and request["method"] == "GET"
    ]
    refused = {
        request_key(r["method"], r["path"]): answer.text[:200]
        for r in reads
        if (answer := filler.send(alice, r["method"], r["path"])).status_code in (401, 403)
    }
    assert refused == {}


def test_bob_may_not_train_into_alices_experiment(auth_world: AuthWorld, bob: httpx.Client) -> None:
    """The resource of a training job is in its body: the job API and the workbench's
    form refuse it without EDIT on the experiment it would log to."""
    request = {
        "dataset_id": "builtin:iris",
        "target": "species",
        "model_types": ["logistic_regression"],
        "task": EXPERIMENT,
    }
    before = auth_world.counts()
    assert bob.post(f"{PREFIX}/api/jobs", json=request).status_code == 403
    form = {**request, "model_types": "logistic_regression"}
    assert bob.post(f"{PREFIX}/workbench/train", data=form).status_code == 403
    assert auth_world.counts() == before


def test_bob_sees_nothing_of_alices_in_searches_compare_reports_and_exports(
    auth_world: AuthWorld, bob: httpx.Client
) -> None:
    experiment_id, run_id = auth_world.experiment_id, auth_world.run_id
    searches = {
        "experiments": bob.post("/api/2.0/mlflow/experiments/search", json={"max_results": 1000}),
        "runs": bob.post("/api/2.0/mlflow/runs/search", json={"experiment_ids": [experiment_id]}),
        "models": bob.get("/api/2.0/mlflow/registered-models/search"),
        "versions": bob.get("/api/2.0/mlflow/model-versions/search"),
        "logged models": bob.post(
            "/api/2.0/mlflow/logged-models/search", json={"experiment_ids": [experiment_id]}
        ),
    }
    pages = {
        "compare": bob.get(f"{PREFIX}/compare", params={"runs": run_id}),
        "compare json": bob.get(f"{PREFIX}/compare.json", params={"runs": run_id}),
        "report": bob.get(f"{PREFIX}/experiments/{experiment_id}/report"),
        "report html": bob.get(f"{PREFIX}/experiments/{experiment_id}/report.html"),
        "report md": bob.get(f"{PREFIX}/experiments/{experiment_id}/report.md"),
        "csv": bob.get(f"{PREFIX}/experiments/{experiment_id}/runs.csv"),
        "runs api": bob.get(f"{PREFIX}/api/experiments/{experiment_id}/runs"),
        "study": bob.get(f"{PREFIX}/studies/{auth_world.study_run_id}"),
    }
    for name, answer in searches.items():
        assert answer.status_code == 200, name  # MLflow's searches filter rather than refuse
        _shows_nothing_of_alices(auth_world, answer, name)
    assert searches["experiments"].json().get("experiments", []) == []
    assert searches["runs"].json().get("runs", []) == []
    for name, answer in pages.items():
        assert answer.status_code == 403, name
        _shows_nothing_of_alices(auth_world, answer, name)


@pytest.mark.parametrize(
    "path",
    [
        f"{PREFIX}/experiments",
        f"{PREFIX}/experiments.json",
        f"{PREFIX}/models",
        f"{PREFIX}/models.json",
        f"{PREFIX}/jobs",
        f"{PREFIX}/jobs.json",
        f"{PREFIX}/api/jobs",
    ],
)
def test_bobs_lists_show_nothing_of_alices(
    auth_world: AuthWorld, bob: httpx.Client, alice: httpx.Client, path: str
) -> None:
    assert EXPERIMENT in alice.get(path).text or MODEL in alice.get(path).text
    answer = bob.get(path)
    assert answer.status_code == 200
    _shows_nothing_of_alices(auth_world, answer, path)


def _shows_nothing_of_alices(world: AuthWorld, answer: httpx.Response, what: str) -> None:
    """Nothing of alice's that the request did not name itself (a refusal may repeat what
    was asked for: bob knew it already)."""
    sent = unquote(str(answer.request.url)) + answer.request.content.decode()
    text = answer.text
    secrets = (EXPERIMENT, MODEL, world.run_id, world.study_run_id, world.job_id)
    for secret in secrets:
        assert secret in sent or secret not in text, f"{what} shows {secret}"
    if world.experiment_id not in sent:
        assert f"/experiments/{world.experiment_id}" not in text, what
    compact = text.replace('": "', '":"')
    assert f'"experiment_id":"{world.experiment_id}"' not in compact, what


def test_alice_may_change_her_own_where_bob_may_not(
    auth_world: AuthWorld, requests_of: list[dict[str, Any]], alice: httpx.Client
) -> None:
    """Every changing route about a resource, sent by alice at her spare experiment, run
    and model (which these requests may delete): none is refused for want of permission.
    Runs last in this module, after the tests that read her main resources."""
    filler = Filler(auth_world, spare=True)
    changes = sorted(
        (
            request
            for request in requests_of
            if _about_alice(request) and request["method"] != "GET"
        ),
        # deletions last: MLflow sweeps a deleted model's grants, and then answers 403
        key=lambda request: (
            request["path"].endswith("/delete"),
            "registered-models" in request["path"],
        ),
    )
    refused = {}
    for request in changes:
        answer = filler.send(alice, request["method"], request["path"])
        if answer.status_code in (401, 403):
            refused[request_key(request["method"], request["path"])] = answer.text[:200]
        if request["path"].endswith("registered-models/delete") and answer.is_success:
            # MLflow sweeps a deleted model's grants: made again, so that the next
            # deletion is of a model alice owns too
            alice.post("/api/2.0/mlflow/registered-models/create", json={"name": SPARE_MODEL})
    assert refused == {}
