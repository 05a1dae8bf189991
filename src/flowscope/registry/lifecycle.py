"""A registered model's lifecycle as the registry holds it: aliases, lifecycle tags, the
evidence behind each version, and the lock that keeps two promoters apart.

Decisions worth knowing:

- The aliases ``staging`` and ``production`` are the truth for those two states; the tag
  ``flowscope.lifecycle`` mirrors them and adds ``candidate`` and ``archived`` (which only
  the tag can say). A promotion interrupted half-way is therefore repaired by running it
  again: the next plan starts from the aliases.
- The lock is a registered model named ``<model>.flowscope-lock``, created to take the lock
  and deleted to release it. Creating a registered model is atomic in every MLflow store
  (a unique name, enforced by the database, also behind a tracking server), so of two
  promoters exactly one creates it; a tag written and re-read would leave a window in
  which both believe they won. The lock carries its holder and an expiry, so a promoter
  that died does not block the model for ever: an expired lock is broken (deleted only if
  it still holds the token that was seen expired).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.registry.policy import EVIDENCE
from flowscope.registry.versions import LIFECYCLE_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from flowscope.config import Settings

__all__ = [
    "ALIASES",
    "DECISION_TAG",
    "LIFECYCLE_TAG",
    "LOCK_SUFFIX",
    "LOCK_TAG",
    "REASON_TAG",
    "STATES",
    "LockBusyError",
    "ModelState",
    "RegistryLock",
    "VersionState",
    "actor",
    "downloaded_model",
    "load_version_model",
    "read_model_state",
]

STATES = ("candidate", "staging", "production", "archived")
ALIASES = ("staging", "production")
REASON_TAG = "flowscope.lifecycle.reason"
DECISION_TAG = "flowscope.lifecycle.decision"
LOCK_SUFFIX = ".flowscope-lock"
LOCK_TAG = "flowscope.lock"
_LOCK_TOKEN = "flowscope.lock.token"
_LOCK_HOLDER = "flowscope.lock.holder"
_LOCK_EXPIRES = "flowscope.lock.expires_ms"


def actor() -> str:
    """Who is acting: ``user@host``, as decision records name them."""
    try:
        user = getpass.getuser()
    except Exception:  # no user name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass
class VersionState:
    """One version as the planner sees it."""

    number: int
    run_id: str | None
    source: str
    status: str
    description: str | None
    created: int | None
    lifecycle: str | None
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]
    evidence: dict[str, bool]
    dataset_digest: str | None = None

    @property
    def state(self) -> str:
        """The state the registry says it is in: aliases first, then the archived tag."""
        if "production" in self.aliases:
            return "production"
        if "staging" in self.aliases:
            return "staging"
        return "archived" if self.lifecycle == "archived" else "candidate"


@dataclass
class ModelState:
    """A registered model's versions and its ``staging``/``production`` aliases."""

    name: str
    aliases: dict[str, int]
    versions: dict[int, VersionState] = field(default_factory=dict)

    def holder(self, alias: str) -> VersionState | None:
        number = self.aliases.get(alias)
        return self.versions.get(number) if number is not None else None


def _client(settings: Settings) -> MlflowClient:
    from flowscope.analysis.runs import client_for

    return client_for(settings)


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def read_model_state(
    settings: Settings, name: str, *, evidence_cache: dict[str, dict[str, Any]] | None = None
) -> ModelState:
    """Every version of ``name`` with its metrics, parameters and evidence (from its source
    run), its aliases and lifecycle tag. ``evidence_cache`` (by run id) saves re-reading
    artifacts, which do not change, when the state is read again under the lock."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(f"no registered model named {name!r}") from None
        raise FlowscopeError(f"cannot read model {name!r}: {exc.message}") from None
    aliases = {alias: int(v) for alias, v in (model.aliases or {}).items() if alias in ALIASES}
    state = ModelState(name=name, aliases=aliases)
    cache = evidence_cache if evidence_cache is not None else {}
    for version in client.search_model_versions(f"name = '{_quote(name)}'"):
        number = int(version.version)
        run = _run_of(client, version.run_id)
        run_id = version.run_id if run is not None else None
        if run_id and run_id not in cache:
            cache[run_id] = _evidence(client, version, run)
        known = cache.get(run_id or "", {})
        tags = dict(version.tags or {})
        state.versions[number] = VersionState(
            number=number,
            run_id=run_id,
            source=version.source or "",
            status=version.status,
            description=version.description,
            created=version.creation_timestamp,
            lifecycle=tags.get(LIFECYCLE_TAG),
            aliases=sorted(alias for alias, held in aliases.items() if held == number),
            tags=tags,
            metrics=dict(run.data.metrics) if run else {},
            params=dict(run.data.params) if run else {},
            evidence=dict(known.get("evidence", dict.fromkeys(EVIDENCE, False))),
            dataset_digest=known.get("digest"),
        )
    return state


def _run_of(client: MlflowClient, run_id: str | None) -> Any:
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException:  # the source run was deleted; the version still stands
        return None


def _evidence(client: MlflowClient, version: ModelVersion, run: Any) -> dict[str, Any]:
    """What the version's run holds: a model signature, evaluation artifacts (metrics and the
    held-out predictions), explanations; and the digest of its training data."""
    run_id = run.info.run_id
    evaluation = {item.path for item in client.list_artifacts(run_id, "evaluation")}
    explain = client.list_artifacts(run_id, "explain")
    digest = None
    for dataset_input in run.inputs.dataset_inputs if run.inputs else []:
        contexts = {tag.value for tag in dataset_input.tags if tag.key == "mlflow.data.context"}
        if "training" in contexts:
            digest = dataset_input.dataset.digest
    return {
        "evidence": {
            "signature": _has_signature(client, version, run),
            "evaluation": {"evaluation/metrics.json", "evaluation/predictions.parquet"}
            <= evaluation,
            "explanations": bool(explain),
        },
        "digest": digest,
    }


def _relative_source(source: str, run_id: str | None, artifact_uri: str) -> str | None:
    """The model's folder relative to its run's artifacts, when the version was registered
    from a run artifact (what flowscope does); None for other sources."""
    source, root = source.rstrip("/"), artifact_uri.rstrip("/")
    if source.startswith(root + "/"):
        return source[len(root) + 1 :]
    prefix = f"runs:/{run_id}/"
    return source[len(prefix) :] if run_id and source.startswith(prefix) else None


def _has_signature(client: MlflowClient, version: ModelVersion, run: Any) -> bool:
    import yaml
    from mlflow.exceptions import MlflowException

    relative = _relative_source(version.source or "", version.run_id, run.info.artifact_uri)
    if relative is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = client.download_artifacts(run.info.run_id, f"{relative}/MLmodel", folder)
            config = yaml.safe_load(Path(local).read_text())
        except (MlflowException, OSError, yaml.YAMLError):
            return False
    return bool(isinstance(config, dict) and config.get("signature"))


@contextmanager
def downloaded_model(
    settings: Settings, run_id: str | None, source: str, label: str
) -> Iterator[Path]:
    """The model folder of a version registered from run ``run_id`` at ``source``,
    downloaded into a temporary folder for the block; ``label`` names it in errors."""
    from mlflow.exceptions import MlflowException

    client = _client(settings)
    if not run_id:
        raise FlowscopeError(f"{label} has no source run to load its model from")
    try:
        artifact_uri = client.get_run(run_id).info.artifact_uri
    except MlflowException:
        raise FlowscopeError(f"{label}'s source run {run_id} no longer exists") from None
    relative = _relative_source(source, run_id, artifact_uri)
    if relative is None:
        raise FlowscopeError(
            f"{label}'s model ({source}) is not a run artifact; flowscope loads models it "
            "logged itself"
        )
    with tempfile.TemporaryDirectory() as folder:
        try:
            local = client.download_artifacts(run_id, relative, folder)
        except (MlflowException, OSError) as exc:
            raise FlowscopeError(f"cannot download {label}'s model: {exc}") from None
        yield Path(local)


def load_version_model(settings: Settings, version: VersionState) -> Any:
    """The version's fitted model, loaded with flowscope's skops allow-list."""
    from flowscope.tracking.models import load_model

    label = f"version {version.number}"
    with downloaded_model(settings, version.run_id, version.source, label) as path:
        return load_model(path)


def version_tags(state: str, reason: str, decision: dict[str, Any]) -> dict[str, str]:
    """The tags recording a decision on a version: its state, the reason in words, and the
    whole decision (gate values, evidence, comparison, policy digest, who, when) as JSON."""
    return {
        LIFECYCLE_TAG: state,
        REASON_TAG: reason[:5000],
        DECISION_TAG: json.dumps(decision, sort_keys=True, default=str)[:90_000],
    }


class LockBusyError(FlowscopeError):
    """Another promoter holds the model's lock."""

    status = 409


class RegistryLock:
    """Mutual exclusion between promoters of one model, kept in the registry itself (see
    the module docstring): ``with RegistryLock(client, "heart-disease"): ...``."""

    def __init__(
        self,
        client: MlflowClient,
        model: str,
        *,
        holder: str | None = None,
        ttl: float = 600.0,
        wait: float = 0.0,
        poll: float = 0.2,
    ) -> None:
        self.client = client
        self.model = model
        self.name = f"{model}{LOCK_SUFFIX}"
        self.holder = holder or actor()
        self.ttl = ttl
        self.wait = wait
        self.poll = poll
        self.token = uuid.uuid4().hex
        self.held = False

    def acquire(self) -> None:
        """Take the lock, waiting up to ``wait`` seconds; :class:`LockBusyError` names the
        holder when it stays taken."""
        from mlflow.exceptions import MlflowException

        deadline = time.monotonic() + self.wait
        while True:
            expires = int((time.time() + self.ttl) * 1000)
            try:
                self.client.create_registered_model(
                    self.name,
                    tags={
                        LOCK_TAG: self.model,
                        _LOCK_TOKEN: self.token,
                        _LOCK_HOLDER: self.holder,
                        _LOCK_EXPIRES: str(expires),
                    },
                    description=f"flowscope: promotion of {self.model} in progress",
                )
                self.held = True
                return
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise FlowscopeError(f"cannot lock {self.model!r}: {exc.message}") from None
            current = self._current()
            if current is not None and current[2] < time.time() * 1000:
                self._break(current[0])
                continue
            if time.monotonic() >= deadline:
                who = f"{current[1]} until {_iso(current[2])}" if current else "someone"
                raise LockBusyError(
                    f"another promotion of {self.model!r} is in progress (lock held by {who}); "
                    "try again when it has finished"
                )
            time.sleep(self.poll)

    def _current(self) -> tuple[str, str, int] | None:
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(self.name).tags or {}
        except MlflowException:
            return None  # released between our attempt and this read
        try:
            expires = int(tags.get(_LOCK_EXPIRES, "0"))
        except ValueError:
            expires = 0
        return tags.get(_LOCK_TOKEN, ""), tags.get(_LOCK_HOLDER, "unknown"), expires

    def _break(self, stale_token: str) -> None:
        # Only delete what is still the expired lock: a fresh one taken meanwhile stays.
        current = self._current()
        if current is not None and current[0] == stale_token:
            self._delete()

    def _delete(self) -> None:
        from mlflow.exceptions import MlflowException

        with contextlib.suppress(MlflowException):  # already gone
            self.client.delete_registered_model(self.name)

    def release(self) -> None:
        """Give the lock back, if this promoter still holds it."""
        if not self.held:
            return
        current = self._current()
        if current is not None and current[0] == self.token:
            self._delete()
        self.held = False

    def __enter__(self) -> RegistryLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
