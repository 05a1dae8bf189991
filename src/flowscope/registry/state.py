"""A registered model as the registry holds it: its versions, their lifecycle state and
aliases, and the evidence behind each (what its source run logged).

The aliases ``staging`` and ``production`` are the truth for those two states (see
:mod:`flowscope.registry.tags`), so a promotion interrupted half-way is repaired by
running it again: the next plan starts from what :func:`read_model_state` reads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowscope.errors import FlowscopeError, NotFoundError
from flowscope.mlflow_client import client_for
from flowscope.public_reason import public_reason
from flowscope.registry.policy import EVIDENCE
from flowscope.registry.tags import ALIASES, LIFECYCLE_TAG
from flowscope.registry.uris import run_artifact_path

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from flowscope.config import Settings

__all__ = ["ModelState", "VersionState", "read_model_state"]


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


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def read_model_state(
    settings: Settings, name: str, *, evidence_cache: dict[str, dict[str, Any]] | None = None
) -> ModelState:
    """Every version of ``name`` with its metrics, parameters and evidence (from its source
    run), its aliases and lifecycle tag. ``evidence_cache`` (by run id) saves re-reading
    artifacts, which do not change, when the state is read again under the lock."""
    from mlflow.exceptions import MlflowException

    client = client_for(settings)
    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise NotFoundError(f"no registered model named {name!r}") from None
        raise FlowscopeError(
            f"cannot read model {name!r}: {public_reason(exc)}", detail=exc.message
        ) from None
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


def _has_signature(client: MlflowClient, version: ModelVersion, run: Any) -> bool:
    import yaml

    from flowscope.artifacts import read_text_artifact

    relative = run_artifact_path(version.source or "", version.run_id, run.info.artifact_uri)
    if relative is None:
        return False
    text = read_text_artifact(client, run.info.run_id, f"{relative}/MLmodel")
    try:
        config = yaml.safe_load(text) if text is not None else None
    except yaml.YAMLError:
        return False
    return bool(isinstance(config, dict) and config.get("signature"))
