"""The registry lock: mutual exclusion between two promoters of one model, kept in the
registry itself, so it holds across processes and machines with no store of flowscope's.

The lock is a registered model named ``<model>.flowscope-lock``, created to take the lock
and deleted to release it. Creating a registered model is atomic in every MLflow store (a
unique name, enforced by the database, also behind a tracking server), so of two promoters
exactly one creates it; a tag written and re-read would leave a window in which both
believe they won. The lock carries its holder and an expiry, so a promoter that died does
not block the model for ever: an expired lock is broken (deleted only if it still holds
the token that was seen expired).
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from typing import TYPE_CHECKING

from flowscope.errors import FlowscopeError
from flowscope.os_user import os_user
from flowscope.public_reason import public_reason
from flowscope.registry.tags import (
    LOCK_EXPIRES_TAG,
    LOCK_HOLDER_TAG,
    LOCK_SUFFIX,
    LOCK_TAG,
    LOCK_TOKEN_TAG,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["LockBusyError", "RegistryLock", "actor"]


def actor() -> str:
    """Who is acting: ``user@host``, as decision records name them."""
    return f"{os_user() or 'unknown'}@{socket.gethostname()}"


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
                        LOCK_TOKEN_TAG: self.token,
                        LOCK_HOLDER_TAG: self.holder,
                        LOCK_EXPIRES_TAG: str(expires),
                    },
                    description=f"flowscope: promotion of {self.model} in progress",
                )
                self.held = True
                return
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise FlowscopeError(
                        f"cannot lock {self.model!r}: {public_reason(exc)}", detail=exc.message
                    ) from None
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
            expires = int(tags.get(LOCK_EXPIRES_TAG, "0"))
        except ValueError:
            expires = 0
        return tags.get(LOCK_TOKEN_TAG, ""), tags.get(LOCK_HOLDER_TAG, "unknown"), expires

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
