"""A real ``mlflow server`` subprocess for tests and benchmarks, waited for over HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_environment() -> dict[str, str]:
    """This process's environment without MLflow or flowscope configuration, for a child
    started in any folder that imports the same flowscope as the tests (a relative
    ``PYTHONPATH`` such as ``src`` would name another folder there)."""
    import flowscope

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWSCOPE_", "MLFLOW_"))}
    package_folder = str(Path(flowscope.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(
        [package_folder, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    )
    return env


class ServerProcess:
    """A server subprocess on 127.0.0.1, started in its own session and waited for by
    polling ``health_path``; ``stop`` kills it (SIGKILL) as a crash would."""

    name = "server"
    health_path = "/health"

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        return None

    def start(self, timeout: float = 90.0) -> None:
        log_path = self.root / f"{self.name}.log"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.root,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # so that stop() reaches its workers too
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; see {log_path}")
            if self.is_ready():
                return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready in {timeout:.0f} s; see {log_path}")

    def is_ready(self) -> bool:
        """Whether it answers: ``health_path`` gives 200."""
        try:
            with urllib.request.urlopen(f"{self.url}{self.health_path}", timeout=2) as answer:
                return bool(answer.status == 200)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None


def isolated_environment(root: Path) -> dict[str, str]:
    """This process's environment without its flowscope and MLflow settings, with a
    journal of its own under ``root``."""
    env = child_environment()
    env["FLOWSCOPE_JOURNAL_DIR"] = str(root / "journal")
    return env


class MlflowServer(ServerProcess):
    """``mlflow server`` with a SQLite store and artifacts under ``root``; ``start`` after
    ``stop`` brings it back on the same port and store."""

    name = "mlflow-server"

    def __init__(self, root: Path, port: int | None = None, workers: int = 1) -> None:
        super().__init__(root, port)
        self.workers = workers

    @property
    def backend_uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--backend-store-uri",
            self.backend_uri,
            "--artifacts-destination",
            str(self.root / "mlartifacts"),
            "--workers",
            str(self.workers),
        ]


class FlowscopeServer(ServerProcess):
    """A ``flowscope`` command that serves HTTP (``ui``, ``serve MODEL@ALIAS``) on the store
    at ``tracking_uri``, with none of the caller's flowscope or MLflow settings but
    ``settings`` (``FLOWSCOPE_<NAME>`` values), ``env`` (other variables, such as MLflow's
    S3 ones) and a journal of its own under ``root``."""

    def __init__(
        self,
        root: Path,
        tracking_uri: str,
        args: list[str],
        *,
        health_path: str,
        settings: dict[str, str] | None = None,
        name: str = "flowscope",
        port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(root, port)
        self.tracking_uri = tracking_uri
        self.env = env or {}
        self.args = args
        self.health_path = health_path
        self.settings = settings or {}
        self.name = name

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "flowscope.cli",
            *self.args,
            "--port",
            str(self.port),
            "--tracking-uri",
            self.tracking_uri,
        ]

    def environment(self) -> dict[str, str]:
        env = isolated_environment(self.root)
        env.update({f"FLOWSCOPE_{key.upper()}": value for key, value in self.settings.items()})
        env.update(self.env)
        return env

    def terminate(self) -> int:
        """Stop it with SIGTERM, as a deployment would, and return its exit code."""
        if self.process is None:
            raise RuntimeError(f"{self.name} is not running")
        os.killpg(self.process.pid, signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.process = None
        return code


def dashboard_server(root: Path, tracking_uri: str) -> FlowscopeServer:
    """``flowscope ui`` on the store at ``tracking_uri``."""
    return FlowscopeServer(
        root, tracking_uri, ["ui"], health_path="/experiments.json", name="dashboard"
    )


class TrackingServer(ServerProcess):
    """``flowscope server`` on ``backend_store_uri`` with artifacts in ``root/artifacts``,
    with none of the caller's flowscope or MLflow settings, waited for on ``/health``."""

    name = "flowscope-server"

    def __init__(
        self,
        root: Path,
        backend_store_uri: str,
        *,
        workers: int = 1,
        args: list[str] | None = None,
        port: int | None = None,
        artifacts_destination: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(root, port)
        self.backend_store_uri = backend_store_uri
        self.workers = workers
        self.args = args or []
        self.artifacts_destination = artifacts_destination or str(self.artifacts)
        self.env = env or {}

    @property
    def artifacts(self) -> Path:
        """The local artifact folder, unless ``artifacts_destination`` names another."""
        return self.root / "artifacts"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "flowscope.cli",
            "server",
            "--port",
            str(self.port),
            "--backend-store-uri",
            self.backend_store_uri,
            "--artifacts-destination",
            self.artifacts_destination,
            "--workers",
            str(self.workers),
            *self.args,
        ]

    def environment(self) -> dict[str, str]:
        env = isolated_environment(self.root)
        env["FLOWSCOPE_WORKBENCH_DIR"] = str(self.root / "workbench")
        env.update(self.env)
        return env


def trained_by_a_job(url: str, **request: object) -> tuple[str, str]:
    """Submit a training job of one model type to the ``flowscope server`` at ``url``
    (``/flowscope/api/jobs``), wait for it and return its job id and run id."""
    import httpx

    from flowscope.web.jobs import MAX_WAIT

    with httpx.Client(base_url=f"{url}/flowscope", timeout=MAX_WAIT + 30) as web:
        answer = web.post("/api/jobs", json=request)
        if answer.status_code != 201:
            raise AssertionError(f"the job was refused: {answer.status_code} {answer.text}")
        [job_id] = answer.json()["job_ids"]
        for _ in range(2):  # the server waits at most MAX_WAIT seconds per request
            job = web.get(f"/api/jobs/{job_id}", params={"wait": MAX_WAIT}).json()
            if job["state"] not in ("queued", "running"):
                break
    if job["state"] != "succeeded":
        raise AssertionError(f"the job did not succeed: {job}")
    [run_id] = job["run_ids"]
    return job_id, run_id
