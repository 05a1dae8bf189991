"""Running the prediction service under uvicorn, in one process or several.

With several workers uvicorn starts each process from an import string, so the parent
hands the model reference and its settings to them once, at start-up, in one environment
variable that :func:`app_from_environment` reads back.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

from flowscope.mlflow_client import client_for
from flowscope.serving.model import ModelRef, resolve_version

if TYPE_CHECKING:
    from fastapi import FastAPI

    from flowscope.config import Settings

_HANDOVER = "_FLOWSCOPE_SERVE_HANDOVER"


def check_model(settings: Settings, model_ref: str) -> tuple[ModelRef, str]:
    """The parsed reference and the version it names now; a bad one fails here, before
    any process starts."""
    ref = ModelRef.parse(model_ref)
    return ref, resolve_version(client_for(settings), ref)


def check_auth(settings: Settings) -> None:
    """With auth on, that the auth store can be read (MLflow's auth tables and flowscope's
    tokens are there): checked once before any worker starts."""
    if not settings.auth:
        return
    from flowscope.auth.services import auth_database_uri, check_auth_tables

    check_auth_tables(auth_database_uri(settings))


def run_server(
    settings: Settings, model_ref: str, *, host: str, port: int, workers: int = 1
) -> None:
    """Serve ``model_ref`` on ``host:port`` until interrupted."""
    import uvicorn

    from flowscope.serving.app import create_serving_app

    if workers <= 1:
        app = create_serving_app(settings, model_ref, bind_host=host)
        _freeze_startup_objects()
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
        return
    check_model(settings, model_ref)
    os.environ[_HANDOVER] = json.dumps(
        {
            "model": model_ref,
            "host": host,
            # the secrets would be dumped masked; the service needs neither
            "settings": settings.model_dump(mode="json", exclude={"admin_password", "secret_key"}),
        }
    )
    uvicorn.run(
        "flowscope.serving.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


# Net allocations of container objects that trigger a young collection (CPython: 700).
_GC_YOUNG_THRESHOLD = 20_000


def _freeze_startup_objects() -> None:
    """Move what start-up created (modules, the model) out of the garbage collector's
    sight: its full collections then walk only what serving creates, which keeps their
    pauses, and the tail latency they cause, short. Objects are still freed by reference
    counting when released.

    Young collections come less often, too. A request's parsed body is a list per row, so
    32 requests of 100 rows in flight hold thousands of live lists; at CPython's default
    threshold every few requests a collection walked (and promoted) all of them, which
    cost about 8% of the server's CPU at 100-row payloads. What serving creates is freed
    by reference counting; cycles are rare, and still collected."""
    import gc

    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(_GC_YOUNG_THRESHOLD, older, oldest)


def app_from_environment() -> FastAPI:
    """The app of one worker process, from what :func:`run_server` handed over."""
    from flowscope.config import load_settings
    from flowscope.serving.app import create_serving_app

    handover = json.loads(os.environ[_HANDOVER])
    app = create_serving_app(
        load_settings(**handover["settings"]), handover["model"], bind_host=handover["host"]
    )
    _freeze_startup_objects()
    return app
