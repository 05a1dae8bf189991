"""What one signed-in user may do with experiments and registered models, by MLflow's own
rules: the user's grants in MLflow's auth store (per-experiment and per-model permissions
are grants of the user's own role there), folded as MLflow folds them, an admin or a
workspace-MANAGE grant allowing everything, and ``default_permission`` where nothing was
granted. Workspaces are off on a flowscope server, so every grant is in MLflow's default
workspace.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from typing import Any, Literal

from flowscope.auth.identity import Identity
from flowscope.errors import FlowscopeError

Need = Literal["read", "update", "manage"]
EXPERIMENT = "experiment"
REGISTERED_MODEL = "registered_model"


class Forbidden(FlowscopeError):
    """A signed-in user without the permission: a 403 naming what is missing."""

    status = 403


class Access:
    """``identity``'s permissions, their grants read once from ``users`` (MLflow's auth
    store). ``None`` as identity is a server without auth: everything is allowed."""

    def __init__(self, identity: Identity | None, users: Any, default_permission: str) -> None:
        self.identity = identity
        self._users = users
        self._default = default_permission
        self._grants: list[Any] | None = None

    @property
    def unrestricted(self) -> bool:
        return self.identity is None or self.identity.is_admin

    def _permission(self, resource_type: str, key: str) -> Any:
        from mlflow.server.auth.permissions import MANAGE, GrantLoadKey, get_permission
        from mlflow.server.auth.requirements import (
            floor_positive_permission,
            fold_grants_for_key,
            is_workspace_admin_grant,
        )

        if self._grants is None and self.identity is not None:
            from mlflow.utils.workspace_utils import DEFAULT_WORKSPACE_NAME

            user = self._users.get_user(self.identity.username)
            self._grants = self._users.list_grants(
                user.id, DEFAULT_WORKSPACE_NAME, {EXPERIMENT, REGISTERED_MODEL}
            )
        grants = self._grants or []
        if any(is_workspace_admin_grant(grant) for grant in grants):
            return MANAGE
        granted = fold_grants_for_key(grants, GrantLoadKey(resource_type, key))
        if granted is None:
            return get_permission(self._default)
        return floor_positive_permission(granted, self._default)

    def allows(self, resource_type: str, key: str, need: Need) -> bool:
        if self.identity is None:
            return True
        if need != "read" and not self.identity.may_write:
            return False
        if self.identity.is_admin:
            return True
        permission = self._permission(resource_type, key)
        return bool(getattr(permission, f"can_{need}"))

    def require(self, resource_type: str, key: str, need: Need, what: str) -> None:
        """:class:`Forbidden` naming ``what`` unless the user may ``need`` it."""
        if not self.allows(resource_type, key, need):
            verb = {"read": "read", "update": "change", "manage": "manage"}[need]
            if need != "read" and self.identity is not None and not self.identity.may_write:
                raise Forbidden(f"a read-only token may not {verb} {what}")
            raise Forbidden(f"you may not {verb} {what}")

    def require_writer(self) -> None:
        """:class:`Forbidden` for a read-only token."""
        if self.identity is not None and not self.identity.may_write:
            raise Forbidden("a read-only token may not change anything")

    def readable_experiments(self, experiment_ids: Iterable[str]) -> list[str]:
        return [e for e in experiment_ids if self.allows(EXPERIMENT, str(e), "read")]

    def readable_models(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.allows(REGISTERED_MODEL, n, "read")]

    def grant_manage(self, resource_type: str, key: str) -> None:
        """Give the user MANAGE on what flowscope just created for them (MLflow does the
        same for experiments and models created through its REST API)."""
        if self.identity is None:
            return
        from mlflow.exceptions import MlflowException

        create = (
            self._users.create_experiment_permission
            if resource_type == EXPERIMENT
            else self._users.create_registered_model_permission
        )
        with suppress(MlflowException):  # already granted
            create(key, self.identity.username, "MANAGE")
        self._grants = None
