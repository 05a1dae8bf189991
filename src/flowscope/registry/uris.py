"""``MODEL@ALIAS`` and ``MODEL/VERSION``: how a user names a registered model version.

One parser for every command and service that takes such a name (``flowscope serve``,
``predict``, ``report deployed``), so each accepts the same spellings and refuses the
same with the same message. MLflow's own URI forms, ``models:/MODEL@ALIAS`` and
``models:/MODEL/VERSION``, are read too; a ``runs:/`` URI (a run's artifact, no registry
version at all) and MLflow's deprecated stages (``models:/MODEL/Production``) are refused,
with what to write instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flowscope.errors import FlowscopeError

__all__ = ["ModelRef", "run_artifact_path"]

_MODELS_SCHEME = "models:/"
_RUNS_SCHEME = "runs:/"
# A name holds neither "@" nor "/" (they separate it from the alias or version); an alias
# is letters, digits, "_" and "-", as MLflow allows.
_REF = re.compile(r"^(?P<name>[^@/\s][^@/]*?)(?:@(?P<alias>[\w\-]+)|/(?P<version>\d+))$")
_EXAMPLES = {
    True: "MODEL@ALIAS (churn@champion) or MODEL/VERSION (churn/3)",
    False: "MODEL@ALIAS (e.g. heart-disease@production)",
}


@dataclass(frozen=True)
class ModelRef:
    """A registered model version named by alias (``churn@champion``) or by number
    (``churn/3``)."""

    name: str
    alias: str | None = None
    version: str | None = None

    @classmethod
    def parse(cls, text: str, *, versions: bool = True) -> ModelRef:
        """Read ``MODEL@ALIAS`` or ``MODEL/VERSION`` (either also as a ``models:/`` URI);
        ``versions=False`` accepts an alias only. Anything else is a :class:`FlowscopeError`
        that says what to write.

        >>> ModelRef.parse("models:/churn@champion")
        ModelRef(name='churn', alias='champion', version=None)
        """
        accepted = _EXAMPLES[versions]
        if not isinstance(text, str) or not text.strip():
            raise FlowscopeError(f"a model version is required: use {accepted}")
        written = text.strip()
        if written.startswith(_RUNS_SCHEME):
            raise FlowscopeError(
                f"{text!r} is a run's artifact, not a registered model version; register it "
                f"and use {accepted}"
            )
        bare = written.removeprefix(_MODELS_SCHEME)
        match = _REF.match(bare)
        if match is None or (not versions and match["alias"] is None):
            stage = bare.rpartition("/")[2]
            hint = (
                f" (MLflow stages such as {stage!r} are not followed; use an alias)"
                if "/" in bare and stage.isalpha()
                else ""
            )
            raise FlowscopeError(f"{text!r} is not {accepted}{hint}")
        return cls(match["name"], match["alias"], match["version"])

    def __str__(self) -> str:
        return f"{self.name}@{self.alias}" if self.alias else f"{self.name}/{self.version}"

    @property
    def uri(self) -> str:
        """The ``models:/`` URI MLflow's loaders take."""
        return f"{_MODELS_SCHEME}{self}"


def run_artifact_path(source: str, run_id: str | None, artifact_uri: str) -> str | None:
    """Where a version's model sits inside its source run's artifacts, from the version's
    ``source``: the run's artifact URI or ``runs:/RUN_ID/`` followed by the path (as
    flowscope registers models); None for a source outside the run."""
    source, root = source.rstrip("/"), artifact_uri.rstrip("/")
    if source.startswith(root + "/"):
        return source[len(root) + 1 :]
    prefix = f"{_RUNS_SCHEME}{run_id}/"
    return source[len(prefix) :] if run_id and source.startswith(prefix) else None
