"""Adaptive micro-batching: concurrent requests merged into one model call.

Requests queue their checked rows; one task takes the first, then whatever else is already
queued, up to ``max_rows``. It waits (at most ``max_wait`` seconds) only while other
requests are still being read, so a lone request at low traffic never waits, while under
load the queue fills during each model call and the next call takes it all at once. The
model runs in a thread of its own, so the event loop keeps reading requests meanwhile.
Each request is answered by the model version it was admitted with: after a reload,
requests already admitted finish on the old version.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flowscope.serving.model import Predicted

if TYPE_CHECKING:
    from flowscope.serving.metrics import ServiceMetrics
    from flowscope.serving.model import ServedModel


@dataclass
class _Pending:
    model: ServedModel
    columns: dict[str, list[Any]]
    rows: int
    future: asyncio.Future[Predicted]


class MicroBatcher:
    """Queue of requests and the task that answers them in merged model calls."""

    def __init__(self, *, max_rows: int, max_wait: float, metrics: ServiceMetrics) -> None:
        self.max_rows = max_rows
        self.max_wait = max_wait
        self.metrics = metrics
        self.arriving = 0  # requests admitted whose rows are not queued yet
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._carry: _Pending | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="flowscope-model")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the service is stopping"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def predict(self, model: ServedModel, columns: dict[str, list[Any]], rows: int) -> Any:
        """Queue checked rows for ``model`` and wait for their share of a batch's answer."""
        future: asyncio.Future[Predicted] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(model, columns, rows, future))
        return await future

    async def _collect(self) -> list[_Pending]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, rows = [first], first.rows
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        while rows < self.max_rows:
            try:
                pending = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                if self.arriving <= 0 or self.max_wait <= 0:
                    break
                deadline = deadline or loop.time() + self.max_wait
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    pending = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if rows + pending.rows > self.max_rows:
                self._carry = pending  # it opens the next batch
                break
            batch.append(pending)
            rows += pending.rows
        return [pending for pending in batch if not pending.future.done()]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            by_version: dict[int, list[_Pending]] = {}
            for pending in batch:
                by_version.setdefault(id(pending.model), []).append(pending)
            for group in by_version.values():
                try:
                    predicted = await loop.run_in_executor(self._executor, _call, group)
                except Exception as exc:
                    for pending in group:
                        if not pending.future.done():
                            pending.future.set_exception(exc)
                    continue
                self.metrics.batch_rows.observe(sum(p.rows for p in group))
                _share(group, predicted)


def _call(group: list[_Pending]) -> Predicted:
    model = group[0].model
    if len(group) == 1:
        columns = group[0].columns
    else:
        columns = {
            name: list(itertools.chain.from_iterable(p.columns[name] for p in group))
            for name in model.schema.names
        }
    return model.predict_columns(columns)


def _share(group: list[_Pending], predicted: Predicted) -> None:
    start = 0
    for pending in group:
        stop = start + pending.rows
        part = Predicted(
            labels=predicted.labels[start:stop],
            probabilities=None
            if predicted.probabilities is None
            else predicted.probabilities[start:stop],
            confidence=None if predicted.confidence is None else predicted.confidence[start:stop],
            batch=predicted,
            offset=start,
        )
        if not pending.future.done():
            pending.future.set_result(part)
        start = stop
