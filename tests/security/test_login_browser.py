"""Signing in to ``flowscope server --auth`` in Chromium: the login form, the experiments
behind it, a token made on the Tokens page (its secret shown once), the session cookie's
flags, MLflow's UI at ``/`` with the same session, signing out, and a wrong password."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flowscope.auth.sessions import COOKIE
from tests.server import auth_fixtures
from tests.server.auth_fixtures import ALICE, EXPERIMENT, AuthWorld, bearer
from tests.web import conftest as web

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.postgres, pytest.mark.slow]

auth_world = auth_fixtures.auth_world
browser = web.browser


@pytest.fixture
def page(browser: Any, auth_world: AuthWorld) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=auth_world.url)
    try:
        yield context.new_page()
    finally:
        context.close()


def _sign_in(page: Any, password: str) -> None:
    page.goto("/flowscope/experiments")
    page.fill("#login-username", ALICE[0])
    page.fill("#login-password", password)
    page.click("#login-button")
    page.wait_for_load_state()


def test_sign_in_make_a_token_use_mlflows_ui_and_sign_out(page: Any, auth_world: AuthWorld) -> None:
    _sign_in(page, ALICE[1])
    assert page.url.endswith("/flowscope/experiments")
    page.get_by_role("link", name=EXPERIMENT, exact=True).wait_for()

    [cookie] = [c for c in page.context.cookies() if c["name"] == COOKIE]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # no script can read it

    page.get_by_role("link", name="Tokens").click()
    page.wait_for_selector("#token-form")
    page.fill("#token-name", "from-the-browser")
    page.select_option("#token-scope", "read")
    page.click("#token-button")
    secret = page.locator("#token-secret").inner_text()
    assert secret.startswith("fst_")
    with httpx.Client(base_url=auth_world.url, headers=bearer(secret)) as client:
        assert client.get("/flowscope/experiments.json").status_code == 200
    page.goto("/flowscope/tokens")
    assert page.locator("#tokens").inner_text().count("from-the-browser") == 1
    assert secret not in page.content()  # shown once
    assert page.locator("#token-secret").count() == 0

    page.goto("/")  # MLflow's UI, with the dashboard's session
    page.get_by_text(EXPERIMENT).first.wait_for(timeout=60_000)

    page.goto("/flowscope/experiments")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("#login-form")
    assert not [c for c in page.context.cookies() if c["name"] == COOKIE]
    assert page.request.get("/flowscope/experiments.json").status == 401


def test_a_wrong_password_shows_the_error(page: Any) -> None:
    _sign_in(page, "not-alices-password")
    assert "wrong user name or password" in page.locator("#login-error").inner_text()
    assert page.locator("#login-form").count() == 1
    assert not [c for c in page.context.cookies() if c["name"] == COOKIE]
