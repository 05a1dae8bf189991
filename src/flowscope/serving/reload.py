"""Hot reload: follow a model alias and swap in the version it moves to.

A background task asks the registry, every ``serve_reload_interval`` seconds, which version
the alias names. When it changed, the new version is loaded beside the old one (in a
thread: the event loop keeps serving) and the holder's reference is swapped in one
assignment. Requests already admitted keep the model object they were admitted with, so
they finish on the old version; its memory is freed when the last of them is answered.
A registry that cannot be reached is logged once and asked again at the next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from flowscope.mlflow_client import client_for
from flowscope.serving.model import ModelRef, load_served_model, resolve_version

if TYPE_CHECKING:
    from flowscope.config import Settings
    from flowscope.serving.model import ServedModel

logger = logging.getLogger(__name__)
T = TypeVar("T")


async def in_daemon_thread(function: Callable[..., T], *args: Any) -> T:
    """Run ``function`` in a daemon thread and await its result.

    MLflow's REST client retries an unreachable server for minutes; in a daemon thread such
    a call never holds up the service's shutdown or the interpreter's exit, as a call in
    the loop's default executor would.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def work() -> None:
        value, error = None, None
        try:
            value = function(*args)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=work, name="flowscope-registry", daemon=True).start()
    return await future


class ModelHolder:
    """The model answering new requests; ``current`` is replaced whole, never mutated."""

    def __init__(self, model: ServedModel) -> None:
        self.current = model
        self._replaced = threading.Condition()

    def replace(self, model: ServedModel) -> None:
        """Answer new requests with ``model`` from now on."""
        with self._replaced:
            self.current = model
            self._replaced.notify_all()

    def wait_for_version(self, version: str, timeout: float) -> bool:
        """Wait until ``version`` answers new requests (a reload after the alias moved);
        False if it does not within ``timeout`` seconds. For a test that acts once the
        service has followed the alias.

        >>> service.holder.wait_for_version("2", timeout=60)  # doctest: +SKIP
        """
        with self._replaced:
            return self._replaced.wait_for(lambda: self.current.version == version, timeout)


class AliasWatcher:
    """Polls the alias ``ref`` names and swaps the holder's model when it moves."""

    def __init__(
        self,
        settings: Settings,
        ref: ModelRef,
        holder: ModelHolder,
        *,
        on_swap: Callable[[ServedModel, ServedModel], None] | None = None,
    ) -> None:
        self.settings = settings
        self.ref = ref
        self.holder = holder
        self.on_swap = on_swap
        self._client = client_for(settings)
        self._failing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.ref.alias:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="alias-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check(self) -> bool:
        """Ask the registry once; True when a new version was loaded and swapped in."""
        version = await in_daemon_thread(resolve_version, self._client, self.ref)
        old = self.holder.current
        if version == old.version:
            return False
        new = await in_daemon_thread(load_served_model, self.settings, self.ref, version)
        self.holder.replace(new)
        logger.warning(
            "flowscope serve: %s moved from version %s to %s; now answering with %s",
            self.ref,
            old.version,
            new.version,
            new.version,
        )
        if self.on_swap is not None:
            self.on_swap(old, new)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.serve_reload_interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:
                    logger.warning(
                        "flowscope serve: cannot check %s (%s); serving version %s meanwhile",
                        self.ref,
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__,
                        self.holder.current.version,
                    )
                self._failing = True
                continue
            if self._failing:
                logger.warning("flowscope serve: the registry answers again")
                self._failing = False
