"""Register a run's logged model as a version of a registered model, once: what
``flowscope register``, the comparison report's next step and the workbench's "register the
best" button do. Registering the same run's model under the same name again finds the
version made before instead of adding another."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from flowscope.config import Settings
from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.public_reason import public_reason


@dataclass(frozen=True)
class RegisteredVersion:
    name: str
    version: int
    run_id: str
    source: str
    uri: str  # models:/NAME/VERSION, what mlflow.pyfunc.load_model and serve take

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def register_run(
    settings: Settings, run_id: str, name: str, *, artifact_path: str = "model"
) -> RegisteredVersion:
    """Register the model ``run_id`` logged at ``artifact_path`` as a version of ``name``."""
    from mlflow.exceptions import MlflowException

    from flowscope.mlflow_client import client_for
    from flowscope.tracking.store import StoreAccess

    if not name.strip():
        raise FlowscopeError("the registered model's name is empty")
    client = client_for(settings)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise NotFoundError(f"no run {run_id!r} in the store") from exc
    path = artifact_path.strip("/")
    try:
        logged = {item.path for item in client.list_artifacts(run_id, path)}
    except (MlflowException, OSError):
        logged = set()
    if f"{path}/MLmodel" not in logged:
        raise FlowscopeError(
            f"run {run_id} logged no model at {path!r} (no {path}/MLmodel among its artifacts)"
        )
    source = f"{run.info.artifact_uri.rstrip('/')}/{path}"
    try:
        version = StoreAccess(settings).register_model(name, source, run_id)
    except MlflowException as exc:
        raise FlowscopeError(
            f"cannot register run {run_id} as {name!r}: {public_reason(exc)}", detail=exc.message
        ) from exc
    return RegisteredVersion(name, int(version), run_id, source, f"models:/{name}/{version}")
