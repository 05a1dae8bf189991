"""What a failed job shows: the kind of problem a real driver's, botocore's, MLflow's or
the file system's error is, without the address, folder or text it carried."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowscope.errors import FlowscopeError
from flowscope.public_reason import public_reason
from tests.leaks import assert_no_leak
from tests.servers import free_port


def test_a_refused_postgresql_connection_is_the_database_unreachable() -> None:
    import psycopg
    import sqlalchemy as sa

    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://flowscope:secret@127.0.0.1:{port}/runs"
    with pytest.raises(sa.exc.OperationalError) as through_sqlalchemy:
        sa.create_engine(url).connect()
    with pytest.raises(psycopg.OperationalError) as from_the_driver:
        psycopg.connect(f"postgresql://flowscope:secret@127.0.0.1:{port}/runs")
    for raised in (through_sqlalchemy.value, from_the_driver.value):
        assert "127.0.0.1" in str(raised)  # what the log keeps
        said = public_reason(raised)
        assert said == "the database is unreachable"
        assert_no_leak(said, f"127.0.0.1:{port}", "flowscope", "secret")


def test_an_object_store_nobody_listens_on_is_the_artifact_store_unreachable() -> None:
    import boto3
    from botocore.config import Config

    endpoint = f"http://127.0.0.1:{free_port()}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="key",
        aws_secret_access_key="secret",
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 0}, connect_timeout=2),
    )
    with pytest.raises(Exception) as raised:
        s3.list_objects_v2(Bucket="bucket")
    assert endpoint in str(raised.value)
    said = public_reason(raised.value)
    assert said == "the artifact store is unreachable"
    assert_no_leak(said, endpoint)


def test_mlflow_and_file_errors_keep_their_kind_and_drop_their_paths(tmp_path: Path) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    database = tmp_path / "mlflow.db"
    with pytest.raises(MlflowException) as missing_run:
        MlflowClient(f"sqlite:///{database}").get_run("0" * 32)
    with pytest.raises(OSError) as missing_file:
        (tmp_path / "staging" / "data.csv").read_bytes()
    said = {
        public_reason(missing_run.value),
        public_reason(missing_file.value),
        public_reason(FlowscopeError("the upload is not a valid XLSX file", detail=str(tmp_path))),
        public_reason(RuntimeError(f"cannot open {tmp_path}")),
    }
    assert said == {
        "the tracking store has no such run, experiment or model",
        "a file could not be read or written: No such file or directory",
        "the upload is not a valid XLSX file",
        "an unexpected RuntimeError; the server log has the details",
    }
    for line in said:
        assert_no_leak(line, tmp_path, database)
