"""The ``MlflowClient`` the analysis modules and their callers open.

Runs themselves are read through :mod:`flowscope.analysis.query` (a run store) and
:mod:`flowscope.analysis.task_runs`; this module only keeps the client factory where its
callers import it from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from flowscope.config import Settings


def client_for(settings: Settings) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(settings.tracking_uri, settings.registry_uri)
