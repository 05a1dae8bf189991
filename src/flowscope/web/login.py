"""Signing in and out of the dashboard, and the personal API tokens a user makes there.

``POST /login`` checks the name and password against MLflow's user store and sets the
session cookie; ``/tokens`` (and ``/api/tokens``) list, make and revoke the user's tokens.
A token's secret is shown once, when it is made.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from flowscope.auth.access import Forbidden
from flowscope.auth.identity import Identity, Unauthenticated
from flowscope.auth.services import AuthServices
from flowscope.auth.sessions import COOKIE
from flowscope.errors import FlowscopeError
from flowscope.web.render import TEMPLATES, json_response, page, wants_json

router = APIRouter()
MAX_FIELD = 1000


def _services(request: Request) -> AuthServices:
    services: AuthServices | None = getattr(request.app.state, "auth", None)
    if services is None:
        raise FlowscopeError("sign-in is off on this server", status=404)
    return services


def _identity(request: Request) -> Identity:
    identity: Identity | None = getattr(request.state, "identity", None)
    if identity is None:
        raise Unauthenticated("sign in first")
    return identity


def safe_next(target: str) -> str:
    """Where to go after signing in: a path of this dashboard, never another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/experiments"
    if "\\" in target or any(ord(c) < 32 for c in target):
        return "/experiments"
    return target


def login_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    next_path = safe_next(str(request.query_params.get("next") or request.url.path))
    if next_path in ("/login", "/logout"):
        next_path = "/experiments"
    return TEMPLATES.TemplateResponse(
        request,
        "login.html",
        {"data": {"error": error, "next": next_path}},
        status_code=status,
    )


@router.get("/login", include_in_schema=False)
def login_form(request: Request) -> Response:
    _services(request)
    return login_page(request)


@router.post("/login", include_in_schema=False)
async def login(request: Request) -> Response:
    services = _services(request)
    form = await request.form()
    username, password = str(form.get("username") or ""), str(form.get("password") or "")
    target = safe_next(str(form.get("next") or "/experiments"))
    if not username or not password or len(username) > MAX_FIELD or len(password) > MAX_FIELD:
        return login_page(request, 400, "enter your user name and password")
    try:
        await run_in_threadpool(services.authenticator.sign_in, username, password)
    except Unauthenticated as refused:
        return login_page(request, 401, refused.message)
    value, _ = services.sessions.issue(username)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        value,
        max_age=services.sessions.max_age,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https" or services.secure_cookies,
        path="/",
    )
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


def _token_fields(data: Any) -> tuple[str, str, float | None]:
    if not isinstance(data, dict):
        raise FlowscopeError("the request body must be a JSON object")
    name, scope = data.get("name"), data.get("scope", "read")
    days = data.get("expires_in_days", 90)
    if not isinstance(name, str) or not isinstance(scope, str):
        raise FlowscopeError("a token needs a name and a scope ('read' or 'write')")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int | float)):
        raise FlowscopeError("expires_in_days must be a number of days or null")
    return name, scope, None if days is None else float(days)


def _make_token(request: Request, name: str, scope: str, days: float | None) -> dict[str, Any]:
    identity = _identity(request)
    if scope != "read" and not identity.may_write:
        raise Forbidden("a read-only token may not make a token that writes")
    issued = _services(request).tokens.create(identity.username, name, scope, days)
    return {"token": issued.token, **issued.info.as_dict()}


@router.get("/api/tokens")
def list_tokens(request: Request) -> Response:
    identity = _identity(request)
    tokens = _services(request).tokens.owned_by(identity.username)
    return json_response({"ok": True, "tokens": [token.as_dict() for token in tokens]})


@router.post("/api/tokens", status_code=201)
async def create_token(request: Request) -> Response:
    try:
        body = await request.json()
    except ValueError:
        raise FlowscopeError("the request body is not valid JSON") from None
    made = await run_in_threadpool(_make_token, request, *_token_fields(body))
    return json_response({"ok": True, **made}, 201)


@router.post("/api/tokens/{token_id}/revoke")
def revoke_token(request: Request, token_id: str) -> Response:
    identity = _identity(request)
    services = _services(request)
    info = services.tokens.revoke(token_id, None if identity.is_admin else identity.username)
    services.authenticator.forget_token(token_id)
    inside = request.url.path.removeprefix(request.scope.get("root_path", ""))
    if wants_json(request) or inside.startswith("/api/"):
        return json_response({"ok": True, **info.as_dict()})
    return RedirectResponse("/tokens", status_code=303)


@router.get("/tokens")
def tokens_page(request: Request) -> Response:
    return _tokens_page(request)


def _tokens_page(
    request: Request, made: dict[str, Any] | None = None, status: int = 200
) -> Response:
    """The user's tokens, and the one just ``made`` (its secret shown this once)."""
    identity = _identity(request)
    tokens = _services(request).tokens.owned_by(identity.username)
    data = {"username": identity.username, "tokens": [t.as_dict() for t in tokens], "made": made}
    return page(request, "tokens.html", data, status=status)


@router.post("/tokens")
async def make_token_from_page(request: Request) -> Response:
    form = await request.form()
    days_text = str(form.get("expires_in_days") or "").strip()
    try:
        days = float(days_text) if days_text else None
    except ValueError:
        raise FlowscopeError("expires_in_days must be a number of days") from None
    made = await run_in_threadpool(
        _make_token, request, str(form.get("name") or ""), str(form.get("scope") or "read"), days
    )
    return _tokens_page(request, made, status=201)
