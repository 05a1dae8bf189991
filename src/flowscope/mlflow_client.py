"""The one place a ``MlflowClient`` is built from flowscope's settings.

Every domain package reads and writes MLflow through :func:`client_for`, so the tracking
and registry URIs are paired the same way everywhere (a registry URI left unset follows
the tracking URI, as in MLflow) and a new SQLite store is created whole first, under the
lock of :func:`flowscope.tracking.opening.ensure_store`, never migrated in place by MLflow.
Its only flowscope import is that leaf, inside the function.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from flowscope.config import Settings

__all__ = ["client_for"]


def client_for(settings: Settings) -> MlflowClient:
    """A client for the store ``settings`` name: ``client_for(load_settings()).get_run(id)``."""
    from mlflow import MlflowClient

    from flowscope.tracking.opening import ensure_store

    ensure_store(settings)
    return MlflowClient(settings.tracking_uri, settings.registry_uri)
