"""Loaded models kept for the dashboard's predictions: a few versions, loaded once each.

A model version's files never change, so a loaded version is kept by ``(name, version)``;
an alias is resolved against the registry on every request, so a moved alias is followed
at once. Loading takes seconds: two requests for the same version wait for one load.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace
from typing import TYPE_CHECKING

from flowscope.mlflow_client import client_for
from flowscope.registry.uris import ModelRef
from flowscope.serving.model import ServedModel, load_served_model, resolve_version

if TYPE_CHECKING:
    from flowscope.config import Settings

DEFAULT_SIZE = 4


def version_ref(name: str, ref: str) -> ModelRef:
    """``name`` at ``ref``, a version number (``"3"``) or an alias (``"@champion"``), read
    by the one ``MODEL@ALIAS`` / ``MODEL/VERSION`` parser."""
    text = ref.strip()
    return ModelRef.parse(f"{name}{text}" if text.startswith("@") else f"{name}/{text}")


class ModelCache:
    """At most ``size`` loaded model versions, the least recently used dropped first;
    safe to share between threads."""

    def __init__(self, settings: Settings, size: int = DEFAULT_SIZE) -> None:
        self.settings = settings
        self.size = max(1, size)
        self._models: OrderedDict[tuple[str, str], ServedModel] = OrderedDict()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, ref: ModelRef) -> ServedModel:
        """The model version ``ref`` names now (an unknown model, version or alias is a
        404), loaded or taken from the cache; ``alias`` is the one ``ref`` went through."""
        version = resolve_version(client_for(self.settings), ref)
        key = (ref.name, version)
        with self._lock:
            model = self._take(key)
            if model is None:
                loading = self._loading.setdefault(key, threading.Lock())
        if model is None:
            with loading:  # one load per version; the others wait for it
                with self._lock:
                    model = self._take(key)
                if model is None:
                    model = load_served_model(self.settings, ref, version)
                    with self._lock:
                        self._models[key] = model
                        self._loading.pop(key, None)
                        while len(self._models) > self.size:
                            self._models.popitem(last=False)
        return model if model.alias == ref.alias else replace(model, alias=ref.alias)

    def _take(self, key: tuple[str, str]) -> ServedModel | None:
        model = self._models.get(key)
        if model is not None:
            self._models.move_to_end(key)
        return model

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)
