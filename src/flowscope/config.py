"""Settings: declared once, from keyword arguments, environment variables and flowscope.yaml.

Precedence, highest first: explicit arguments, environment variables (``FLOWSCOPE_<NAME>``;
``MLFLOW_TRACKING_URI`` and ``MLFLOW_REGISTRY_URI`` for the two URIs), the YAML file
(``FLOWSCOPE_CONFIG`` or ``./flowscope.yaml``), then the defaults below. A bad value fails
at start-up with a :class:`~flowscope.errors.ConfigError` that names the setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from flowscope.errors import ConfigError

CONFIG_FILE_NAME = "flowscope.yaml"
DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SERVER_SCHEMES = ("http", "https")


def _aliases(name: str, *extra: str) -> AliasChoices:
    return AliasChoices(name, f"FLOWSCOPE_{name.upper()}", *extra)


class Settings(BaseSettings):
    """Everything flowscope can be told; each field documents itself in the README."""

    model_config = SettingsConfigDict(extra="forbid", validate_default=True)

    tracking_uri: str = Field(
        "sqlite:///mlflow.db",
        validation_alias=_aliases("tracking_uri", "MLFLOW_TRACKING_URI"),
        description="Where runs are stored: a database URI (sqlite, postgresql, mysql) "
        "or the address of an `mlflow server`.",
    )
    registry_uri: str | None = Field(
        None,
        validation_alias=_aliases("registry_uri", "MLFLOW_REGISTRY_URI"),
        description="Model registry URI; the tracking URI when unset.",
    )
    artifacts_dir: Path = Field(
        Path("mlartifacts"),
        validation_alias=_aliases("artifacts_dir"),
        description="Where experiments created on a database store keep their artifacts "
        "(what `mlflow server` uses by default) when no `artifact_root` is set.",
    )
    artifact_root: str | None = Field(
        None,
        validation_alias=_aliases("artifact_root"),
        description="Artifact root URI of experiments created on a database store, such as "
        "`s3://BUCKET/PREFIX` for an S3-compatible object store (reached with MLflow's "
        "`MLFLOW_S3_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`; "
        "`flowscope server` sets `mlflow-artifacts:/`); `artifacts_dir` when unset.",
    )
    journal_dir: Path = Field(
        Path(".flowscope/journal"),
        validation_alias=_aliases("journal_dir"),
        description="Folder of the on-disk journal of records not yet delivered.",
    )
    tracking: bool = Field(
        True,
        validation_alias=_aliases("tracking"),
        description="Record runs at all; false makes every run a no-op (for debugging).",
    )
    autolog: bool = Field(
        True,
        validation_alias=_aliases("autolog"),
        description="Capture the environment (Python, package versions, git commit) when a "
        "run starts.",
    )
    experiments: dict[str, str] = Field(
        default_factory=dict,
        validation_alias=_aliases("experiments"),
        description="Experiment name per task, for tasks whose experiment is not named "
        "after the task (JSON object in the environment).",
    )
    flush_timeout: float = Field(
        30.0,
        ge=0,
        validation_alias=_aliases("flush_timeout"),
        description="Seconds a finished run waits for its records to be delivered before "
        "leaving them in the journal for `flowscope sync`.",
    )
    start_timeout: float = Field(
        2.0,
        ge=0,
        validation_alias=_aliases("start_timeout"),
        description="Seconds `start_run` waits for the run to be created before going on offline.",
    )
    request_timeout: float = Field(
        10.0,
        gt=0,
        validation_alias=_aliases("request_timeout"),
        description="Seconds one request to a tracking server may take before it is retried.",
    )
    max_backoff: float = Field(
        5.0,
        gt=0,
        validation_alias=_aliases("max_backoff"),
        description="Longest pause, in seconds, between two delivery attempts while the "
        "store is unreachable.",
    )
    sync_on_start: bool = Field(
        True,
        validation_alias=_aliases("sync_on_start"),
        description="When a run starts, deliver in the background what crashed processes "
        "left in the journal.",
    )

    mlflow_ui_url: str | None = Field(
        None,
        validation_alias=_aliases("mlflow_ui_url"),
        description="Address of an MLflow UI showing the same store; run pages link to it.",
    )

    # -- what the dashboard, `flowscope server` and `flowscope serve` answer -----------
    allowed_hosts: str | None = Field(
        None,
        validation_alias=_aliases("allowed_hosts", "MLFLOW_SERVER_ALLOWED_HOSTS"),
        description="Host headers the dashboard, server and prediction service answer "
        "besides the loopback names and the address they listen on, comma-separated, `*` "
        "as a wildcard (`mlflow.example.com,server:*`); any other Host gets 400 (DNS "
        "rebinding). `MLFLOW_SERVER_ALLOWED_HOSTS` is honoured.",
    )
    cors_allowed_origins: str | None = Field(
        None,
        validation_alias=_aliases("cors_allowed_origins", "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"),
        description="Origins (`https://app.example.com`, comma-separated, `*` for any, "
        "without credentials) whose pages may call the apps from a browser; unset: none, "
        "no CORS headers and cross-origin writes refused. "
        "`MLFLOW_SERVER_CORS_ALLOWED_ORIGINS` is honoured.",
    )

    # -- serving (flowscope serve) and its inference monitor ---------------------------
    serve_max_batch_rows: int = Field(
        1024,
        ge=1,
        validation_alias=_aliases("serve_max_batch_rows"),
        description="Most rows one model call takes when concurrent requests are merged.",
    )
    serve_max_batch_wait_ms: float = Field(
        2.0,
        ge=0,
        validation_alias=_aliases("serve_max_batch_wait_ms"),
        description="Longest a batch waits, in milliseconds, for requests already being read.",
    )
    serve_max_concurrency: int = Field(
        256,
        ge=1,
        validation_alias=_aliases("serve_max_concurrency"),
        description="Prediction requests in flight at once; more get a fast 503 with Retry-After.",
    )
    serve_max_body_bytes: int = Field(
        10 * 1024 * 1024,
        ge=1,
        validation_alias=_aliases("serve_max_body_bytes"),
        description="Largest request body, in bytes; a larger one gets 413 before it is parsed.",
    )
    serve_reload_interval: float = Field(
        10.0,
        gt=0,
        validation_alias=_aliases("serve_reload_interval"),
        description="Seconds between two checks of the served alias; a moved alias is "
        "loaded and swapped in.",
    )
    monitor: bool = Field(
        True,
        validation_alias=_aliases("monitor"),
        description="Record every prediction and write inference runs with drift.",
    )
    monitor_window_seconds: float = Field(
        60.0,
        gt=0,
        validation_alias=_aliases("monitor_window_seconds"),
        description="Length of an inference window: one inference run per window.",
    )
    monitor_window_size: int = Field(
        100_000,
        ge=1,
        validation_alias=_aliases("monitor_window_size"),
        description="Predictions that close a window before its time is up.",
    )
    monitor_per_request: bool = Field(
        False,
        validation_alias=_aliases("monitor_per_request"),
        description="One inference run per request instead of per window (low-traffic demos).",
    )
    monitor_process: bool = Field(
        True,
        validation_alias=_aliases("monitor_process"),
        description="Write inference runs in a helper process, off the serving process's CPU.",
    )
    monitor_max_buffered: int = Field(
        500_000,
        ge=1,
        validation_alias=_aliases("monitor_max_buffered"),
        description="Predictions held in memory waiting to be written; beyond it new ones are "
        "counted as dropped.",
    )
    drift_threshold: float = Field(
        0.2,
        gt=0,
        validation_alias=_aliases("drift_threshold"),
        description="Population stability index above which a feature counts as drifted.",
    )
    drift_min_samples: int = Field(
        30,
        ge=1,
        validation_alias=_aliases("drift_min_samples"),
        description="Fewest predictions in a window for drift to be computed.",
    )

    workbench_dir: Path = Field(
        Path(".flowscope/workbench"),
        validation_alias=_aliases("workbench_dir"),
        description="Folder of the workbench's uploaded data sets and, with no `jobs_url`, "
        "its job queue (a SQLite file).",
    )
    upload_max_bytes: int = Field(
        100 * 1024 * 1024,
        ge=1,
        validation_alias=_aliases("upload_max_bytes"),
        description="Largest file the workbench accepts (data sets, prediction batches); "
        "a bigger upload is refused with 413 before it is parsed.",
    )
    jobs_url: str | None = Field(
        None,
        validation_alias=_aliases("jobs_url"),
        description="The job queue: unset for a SQLite file in `workbench_dir` (one "
        "machine), `redis://HOST:PORT/DB` when several machines share the work.",
    )
    jobs_embedded: bool | None = Field(
        None,
        validation_alias=_aliases("jobs_embedded"),
        description="Whether `flowscope ui` runs jobs itself; unset: it does when no "
        "`jobs_url` is set (start `flowscope worker` processes otherwise).",
    )

    # -- who may do what (flowscope server --auth, flowscope serve --auth) --------------
    auth: bool = Field(
        False,
        validation_alias=_aliases("auth"),
        description="Require a signed-in user (password, API token or browser session) on "
        "every route but `/health` and the login page, with MLflow's permissions per "
        "experiment and registered model.",
    )
    auth_database_uri: str | None = Field(
        None,
        validation_alias=_aliases("auth_database_uri"),
        description="Database of the users, permissions and API tokens (MLflow's auth "
        "store); the tracking database when unset.",
    )
    admin_username: str | None = Field(
        None,
        validation_alias=_aliases("admin_username"),
        description="Name of the first admin, created when the user store has none.",
    )
    admin_password: SecretStr | None = Field(
        None,
        validation_alias=_aliases("admin_password"),
        description="Password of the first admin: at least 12 characters and not a known "
        "default; the server refuses to start without one.",
    )
    default_permission: Literal["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"] = Field(
        "READ",
        validation_alias=_aliases("default_permission"),
        description="What a user may do with an experiment or model nobody granted them "
        "anything on (MLflow's `default_permission`); NO_PERMISSIONS to share nothing by "
        "default.",
    )
    secret_key: SecretStr | None = Field(
        None,
        validation_alias=_aliases("secret_key", "MLFLOW_FLASK_SERVER_SECRET_KEY"),
        description="Key signing browser sessions and their CSRF tokens, the same for every "
        "process of a server; when unset, `flowscope server --auth` makes one at start-up "
        "(sessions then end when it restarts).",
    )
    session_hours: float = Field(
        12.0,
        gt=0,
        validation_alias=_aliases("session_hours"),
        description="Hours a browser session lasts after signing in.",
    )
    token_cache_seconds: float = Field(
        10.0,
        ge=0,
        validation_alias=_aliases("token_cache_seconds"),
        description="Seconds a process trusts a checked password or API token before "
        "checking it again, and `flowscope serve --auth` its decision that a user may read "
        "the model (a revoked token stops working in the process that revoked it at once, "
        "in the others within this time).",
    )

    @field_validator("jobs_url")
    @classmethod
    def _jobs_scheme(cls, value: str | None) -> str | None:
        if value is None or urlparse(value).scheme in ("redis", "rediss"):
            return value
        raise ValueError(f"{value!r} is not a job queue flowscope knows; use redis://HOST:PORT/DB")

    @field_validator("cors_allowed_origins")
    @classmethod
    def _origins(cls, value: str | None) -> str | None:
        for origin in (value or "").split(","):
            origin = origin.strip()
            if origin and origin != "*" and not urlparse(origin).netloc:
                raise ValueError(
                    f"{origin!r} is not an origin; use SCHEME://HOST[:PORT], such as "
                    "https://app.example.com"
                )
        return value

    @field_validator("artifact_root")
    @classmethod
    def _artifact_root_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # a one-letter scheme is a Windows drive, not a URI
        if len(urlparse(value).scheme) > 1:
            stripped = value.rstrip("/")  # but a bare root such as mlflow-artifacts:/ stays
            return value if stripped.endswith(":") else stripped
        raise ValueError(
            f"{value!r} is not a URI; use s3://BUCKET/PREFIX, file:///FOLDER or another "
            "artifact store MLflow knows (a local folder goes in artifacts_dir)"
        )

    @field_validator("tracking_uri", "registry_uri")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme = urlparse(value).scheme.split("+")[0]
        if scheme in DATABASE_SCHEMES or scheme in SERVER_SCHEMES or scheme == "file":
            return value
        raise ValueError(
            f"{value!r} is not a store flowscope knows; use sqlite:///FILE, "
            "postgresql://..., or http(s)://HOST:PORT of an mlflow server"
        )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = config_file_path()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    @property
    def is_database(self) -> bool:
        """True when the tracking URI names a database that flowscope opens directly."""
        return urlparse(self.tracking_uri).scheme.split("+")[0] in DATABASE_SCHEMES

    @property
    def runs_jobs_itself(self) -> bool:
        """Whether the dashboard's process runs the workbench's jobs: it does unless a
        shared queue (``jobs_url``) has ``flowscope worker`` processes, or ``jobs_embedded``
        says otherwise."""
        return self.jobs_url is None if self.jobs_embedded is None else self.jobs_embedded

    @property
    def default_artifact_root(self) -> str:
        """Where a new experiment keeps its artifacts: ``artifact_root``, else the URI of
        ``artifacts_dir`` (MLflow's ``--default-artifact-root``)."""
        return self.artifact_root or self.artifacts_dir.as_uri()

    def experiment_name(self, task: str, kind: str = "training") -> str:
        """The experiment a run of ``task`` goes to: ``<task>``, ``<task>-inference``."""
        name = self.experiments.get(task, task)
        return f"{name}-inference" if kind == "inference" else name


def config_file_path() -> Path | None:
    """The YAML file to read: ``FLOWSCOPE_CONFIG`` if set, else ``./flowscope.yaml`` if present."""
    explicit = os.environ.get("FLOWSCOPE_CONFIG")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"FLOWSCOPE_CONFIG names {explicit!r}, which is not a file")
        return path
    default = Path(CONFIG_FILE_NAME)
    return default if default.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning a validation failure into one error naming the setting."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except Exception as exc:  # a YAML file that does not parse
        raise ConfigError(f"cannot read the settings: {exc}") from None
    settings.artifacts_dir = settings.artifacts_dir.expanduser().resolve()
    settings.journal_dir = settings.journal_dir.expanduser().resolve()
    return settings


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        if error["type"] == "extra_forbidden":
            problems.append(f"unknown setting {name!r}")
        else:
            field = name.split(".")[0]
            problems.append(
                f"invalid setting {name!r} (FLOWSCOPE_{field.upper()} or {field} in "
                f"{CONFIG_FILE_NAME}): {error['msg']}"
            )
    return "; ".join(problems)
