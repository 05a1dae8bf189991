"""flowscope's sign-in for MLflow's own routes: the ``authorization_function`` of
MLflow's basic-auth app on ``flowscope server --auth``.

MLflow then decides, with its own validators, what the user may do on each of its routes;
this only says who the user is, accepting what the dashboard accepts: a password (HTTP
basic, as MLflow's clients send it), an API token (``MLFLOW_TRACKING_TOKEN``, sent as
``Authorization: Bearer``) or the dashboard's session cookie, so MLflow's UI at ``/`` works
after signing in to the dashboard. A read-only token may only read: safe methods and
MLflow's searches (which are POSTs). A change made with the session cookie must come from
the server's own origin (MLflow's UI sends no CSRF token of ours).

MLflow calls the function by its import path inside a Flask request, so the authenticator
is built once per process from the settings the worker inherited; nothing else in
flowscope keeps such a module-level object.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

from flowscope.auth.identity import Identity, Unauthenticated

HOOK = "flowscope.auth.mlflow_hook:authenticate"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# MLflow's reads that are POSTs: a read token may send them
READ_POSTS = (
    "/runs/search",
    "/experiments/search",
    "/registered-models/search",
    "/model-versions/search",
    "/logged-models/search",
    "/metrics/get-history-bulk-interval",
    "/traces/search",
    "/datasets/search",
    "/graphql",
)


@functools.cache
def process_services() -> Any:
    """This process's :class:`~flowscope.auth.services.AuthServices`, shared by
    MLflow's routes and the dashboard (one cache, so a revoked token stops working on both
    at once)."""
    from flowscope.auth.services import open_auth
    from flowscope.config import load_settings

    return open_auth(load_settings(auth=True))


def authenticate() -> Any:
    """The werkzeug ``Authorization`` MLflow wants (its ``username`` is what it checks
    permissions for), or the 401/403 response to send instead."""
    from flask import g, make_response, request
    from werkzeug.datastructures import Authorization

    cached = getattr(g, "flowscope_identity", None)
    if cached is None:
        services = process_services()
        try:
            identity = services.authenticator.identify(
                request.headers.get("Authorization"),
                request.cookies.get("flowscope_session"),
            )
        except Unauthenticated as refused:
            return _refusal(make_response, 401, refused.message)
        if identity is None:
            return _refusal(make_response, 401, "sign in: a password, an API token or a session")
        problem = _problem(identity, request)
        if problem:
            return _refusal(make_response, 403, problem)
        g.flowscope_identity = cached = identity
    return Authorization("basic", {"username": cached.username, "password": ""})


def _problem(identity: Identity, request: Any) -> str | None:
    if request.method in SAFE_METHODS:
        return None
    if not identity.may_write and not request.path.endswith(READ_POSTS):
        return "a read-only token may not change anything"
    if identity.via == "session":
        origin = request.headers.get("Origin") or request.headers.get("Referer")
        if not origin or urlsplit(origin).netloc != request.host:
            return "a change made with a browser session must come from this server's pages"
    return None


def _refusal(make_response: Any, status: int, message: str) -> Any:
    response = make_response(message, status)
    response.mimetype = "text/plain"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="mlflow"'
    return response
