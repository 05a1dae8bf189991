"""The one client factory pairs the tracking and registry stores as the settings say."""

from __future__ import annotations

from pathlib import Path

from mlflow import MlflowClient

from flowscope.config import Settings
from flowscope.mlflow_client import client_for


def test_the_client_follows_the_registry_setting(settings: Settings, tmp_path: Path) -> None:
    registry = f"sqlite:///{tmp_path / 'registry.db'}"
    client_for(settings.model_copy(update={"registry_uri": registry})).create_registered_model("m")
    assert [m.name for m in MlflowClient(registry).search_registered_models()] == ["m"]
    assert client_for(settings).search_registered_models() == []
