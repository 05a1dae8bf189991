"""The suite's route tables are the apps' routes: a new route fails here until it is added
to :mod:`tests.security.routes` with the attacks that fit it."""

from __future__ import annotations

from typing import Any

from starlette.routing import Mount, Route

from tests.security.routes import DASHBOARD_MOUNTS, DASHBOARD_ROUTES, SERVICE_ROUTES


def declared(app: Any) -> tuple[set[tuple[str, str]], set[str]]:
    """Each (method, path) an app routes, HEAD aside, and the paths it mounts."""
    routes: set[tuple[str, str]] = set()
    mounts: set[str] = set()
    _walk(app.routes, "", routes, mounts)
    return routes, mounts


def _walk(found: list[Any], prefix: str, routes: set[tuple[str, str]], mounts: set[str]) -> None:
    for route in found:
        if isinstance(route, Mount):
            mounts.add(prefix + route.path)
        elif isinstance(route, Route):
            routes.update((m, prefix + route.path) for m in route.methods or () if m != "HEAD")
        elif hasattr(route, "original_router"):  # FastAPI's included router
            inner = prefix + getattr(route.include_context, "prefix", "")
            _walk(route.original_router.routes, inner, routes, mounts)
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")


def test_every_dashboard_route_is_attacked(dashboard_app: Any) -> None:
    routes, mounts = declared(dashboard_app)
    assert routes == set(DASHBOARD_ROUTES)
    assert mounts == set(DASHBOARD_MOUNTS)


def test_every_service_route_is_attacked(service_app: Any) -> None:
    routes, mounts = declared(service_app)
    assert routes == set(SERVICE_ROUTES)
    assert not mounts
