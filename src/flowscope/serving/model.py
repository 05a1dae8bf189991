"""The served model: which registered version, loaded safely, with what it needs to answer.

``MODEL@ALIAS`` follows an alias (and is reloaded when the alias moves); ``MODEL/VERSION``
pins a version. Loading goes through :func:`flowscope.tracking.models.load_model`, which
re-checks the skops allow-list, and reads the training run's dataset profile, the
reference the inference monitor measures drift against.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.artifacts import (
    ArtifactStoreUnreachableError,
    artifact_store_reached,
    read_json_artifact,
)
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.mlflow_client import client_for
from flowscope.registry.uris import ModelRef
from flowscope.serving.fastpath import Predictor, compile_predictor
from flowscope.serving.schema import InputSchema

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow import MlflowClient

    from flowscope.config import Settings

PROFILE_ARTIFACT = "dataset/profile.json"


@dataclass
class Predicted:
    """A model's answer for some rows: labels, and for classifiers the class probabilities.

    ``inputs`` are the model call's input arrays; a request's share of a merged call keeps
    the whole call as ``batch`` and its first row as ``offset``, for the monitor, which then
    copies nothing per request."""

    labels: list[Any]
    probabilities: np.ndarray | None = None
    confidence: np.ndarray | None = None
    inputs: dict[str, np.ndarray] | None = None
    batch: Predicted | None = None
    offset: int = 0


@dataclass
class ServedModel:
    """One loaded model version and what serving and monitoring need to know about it."""

    name: str
    version: str
    alias: str | None
    run_id: str | None
    task: str
    pipeline: Any
    schema: InputSchema
    signature: dict[str, Any]
    classes: list[Any] | None
    profile: dict[str, Any] | None = None
    fast: Predictor | None = None  # the pipeline's exact shortcut, when it has one
    loaded_at: float = field(default_factory=time.time)
    names: dict[str, str] = field(default_factory=dict)  # str(label) -> name, from training

    @property
    def class_names(self) -> list[str]:
        """The labels as text: the keys of probabilities and ``count_<class>`` metrics."""
        return [str(label) for label in self.classes or []]

    def name_of(self, label: Any) -> str:
        """A class label's name as training recorded it (breast cancer's 0: "malignant");
        the label as text when the model has no names."""
        text = str(label)
        return self.names.get(text, text)

    def predict(self, frame: pd.DataFrame) -> Predicted:
        """Labels (the class with the highest probability) and probabilities for ``frame``;
        one model call, as ``predict`` would take the same arg-max again."""
        import numpy as np

        if self.classes is None:
            return Predicted(labels=np.asarray(self.pipeline.predict(frame)).tolist())
        return self._answer(np.asarray(self.pipeline.predict_proba(frame), dtype=np.float64))

    def predict_columns(self, columns: dict[str, list[Any]]) -> Predicted:
        """Predict checked columns (see :mod:`~flowscope.serving.schema`), through the
        exact shortcut when the model has one."""
        import numpy as np
        import pandas as pd

        from flowscope.serving.schema import to_arrays

        arrays = to_arrays(self.schema, columns)
        if self.fast is not None:
            predicted = self._answer(np.asarray(self.fast(arrays), dtype=np.float64))
        else:
            predicted = self.predict(pd.DataFrame(arrays, copy=False))
        predicted.inputs = arrays
        return predicted

    def _answer(self, probabilities: np.ndarray) -> Predicted:
        import numpy as np

        classes = self.classes or []
        best = probabilities.argmax(axis=1)
        labels = [classes[index] for index in best.tolist()]
        confidence = probabilities[np.arange(len(best)), best]
        return Predicted(labels=labels, probabilities=probabilities, confidence=confidence)

    def describe(self) -> dict[str, Any]:
        """What ``GET /model`` answers."""
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "task": self.task,
            "problem": "classification" if self.classes is not None else "regression",
            "classes": self.classes,
            "class_names": [self.name_of(label) for label in self.classes]
            if self.classes is not None
            else None,
            "signature": self.signature,
            "loaded_at": self.loaded_at,
        }


def resolve_version(client: MlflowClient, ref: ModelRef) -> str:
    """The version ``ref`` names now; an unknown model, alias or version is a 404."""
    from mlflow.exceptions import MlflowException

    try:
        if ref.alias:
            return str(client.get_model_version_by_alias(ref.name, ref.alias).version)
        return str(client.get_model_version(ref.name, str(ref.version)).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise NotFoundError(f"no model version {ref} in the registry") from None
        raise


def load_served_model(settings: Settings, ref: ModelRef, version: str | None = None) -> ServedModel:
    """Download and load ``ref`` (at ``version`` when given) with its signature, classes,
    training task and drift reference."""
    from mlflow.models import Model

    from flowscope.tracking.models import class_names_of, load_model

    client = client_for(settings)
    version = version or resolve_version(client, ref)
    model_version = client.get_model_version(ref.name, version)
    folder = Path(tempfile.mkdtemp(prefix="flowscope-serve-"))
    unloadable = f"model {ref.name} version {version} could not be loaded"
    try:
        local = _download(settings, client, ref.name, version, folder)
        pipeline = load_model(local)
        mlmodel = Model.load(str(local))
        signature = mlmodel.signature
    except ArtifactStoreUnreachableError:
        raise
    except FlowscopeError as exc:
        raise FlowscopeError(
            f"{unloadable}: {exc.message}", status=exc.status, detail=exc.detail
        ) from None
    except Exception as exc:  # a library's error names the download folder: for the log
        raise FlowscopeError(
            unloadable, status=500, detail=f"{type(exc).__name__}: {exc}"
        ) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if signature is None:
        raise FlowscopeError(f"model {ref.name} version {version} has no signature to check input")
    classes = getattr(pipeline, "classes_", None)
    run_id = model_version.run_id
    schema = InputSchema.from_signature(signature)
    profile = _profile(client, run_id)
    return ServedModel(
        name=ref.name,
        version=version,
        alias=ref.alias,
        run_id=run_id,
        task=training_task(settings, client, run_id, ref.name),
        pipeline=pipeline,
        schema=schema,
        signature={key: _json(value) for key, value in signature.to_dict().items()},
        classes=None if classes is None else list(_plain(classes)),
        profile=profile,
        fast=compile_predictor(pipeline, schema, profile),
        names=class_names_of(mlmodel.metadata) if classes is not None else {},
    )


def _download(
    settings: Settings, client: MlflowClient, name: str, version: str, folder: Path
) -> Path:
    import mlflow.artifacts

    uri = client.get_model_version_download_uri(name, version)
    with artifact_store_reached(f"model {name} version {version}", uri):
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=str(folder), tracking_uri=settings.tracking_uri
        )
    return Path(local)


def training_task(settings: Settings, client: MlflowClient, run_id: str | None, name: str) -> str:
    """The task the model was trained for: its source run's experiment, read back through
    the ``experiments`` setting when that maps a task to another experiment name."""
    if not run_id:
        return name
    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id).name
    for task, mapped in settings.experiments.items():
        if mapped == experiment:
            return task
    return str(experiment)


def _profile(client: MlflowClient, run_id: str | None) -> dict[str, Any] | None:
    """The training dataset's profile; None when the run logged none (no drift then)."""
    if not run_id:
        return None
    # a plain MLflow model has none: it is served, without a drift reference
    data = read_json_artifact(client, run_id, PROFILE_ARTIFACT)
    return data if isinstance(data, dict) else None


def _json(value: Any) -> Any:
    """MLflow keeps a signature's parts as JSON text; ``/model`` answers them as JSON."""
    return json.loads(value) if isinstance(value, str) else value


def _plain(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)
