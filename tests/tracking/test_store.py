"""Which store failures are the store refusing a record (set aside) and which are
transient (retried)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy.exc
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, INVALID_PARAMETER_VALUE

from flowscope.tracking.store import is_permanent


def _as_mlflow_raises(cause: BaseException, code: int = BAD_REQUEST) -> MlflowException:
    """The error as MLflow's SQL store raises it: wrapped, with the cause chained."""
    try:
        try:
            raise cause
        except BaseException as exc:
            raise MlflowException(message=str(exc), error_code=code) from exc
    except MlflowException as wrapped:
        return wrapped


@pytest.mark.parametrize(
    "cause",
    [
        sqlalchemy.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
        sqlalchemy.exc.OperationalError("INSERT", {}, Exception("database is locked")),
        sqlalchemy.exc.DisconnectionError("connection was closed"),
    ],
    ids=["pool-timeout", "database-locked", "disconnected"],
)
def test_a_busy_or_unreachable_database_is_retried(cause: BaseException) -> None:
    assert not is_permanent(_as_mlflow_raises(cause))


def test_a_refused_record_is_permanent() -> None:
    integrity = sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("UNIQUE constraint"))
    assert is_permanent(_as_mlflow_raises(integrity))
    assert is_permanent(MlflowException("param changed", error_code=INVALID_PARAMETER_VALUE))
    assert not is_permanent(ConnectionError("refused"))


def test_registering_twice_finds_the_first_version_whatever_the_name(tmp_path: Path) -> None:
    """A replayed registration answers the version it made, for a name with a quote too."""
    from mlflow import MlflowClient

    from flowscope.tracking.store import StoreAccess
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient(settings.tracking_uri)
    run = client.create_run(client.create_experiment("quotes"))
    source = f"{run.info.artifact_uri}/model"
    access = StoreAccess(settings)
    name = "bob's model"
    first = access.register_model(name, source, run.info.run_id)
    assert access.register_model(name, source, run.info.run_id) == first == "1"
    assert [str(v.version) for v in client.search_model_versions(f'name = "{name}"')] == ["1"]
