"""Delivery of one journal to the MLflow store, in order, exactly once.

The same code serves the live writer of a running process and ``flowscope sync`` adopting
what a dead process left behind. After each successful request the delivered offset is
saved; a crash between the request and the save replays that one request, which the store
absorbs: metric points keep their original timestamps (MLflow drops exact duplicates),
params and tags are re-set to the same values, and the run is found again by its local id
instead of being created twice.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag

from flowscope.tracking.journal import Journal, load_state
from flowscope.tracking.store import LOCAL_ID_TAG, PARENT_TAG, StoreAccess, is_permanent

logger = logging.getLogger(__name__)

# MLflow's limits for one log_batch request.
MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_ENTITIES = 1000
MAX_BYTES = 900_000  # under the 1 MB request limit, leaving room for the envelope
_LOOKAHEAD = 8 * MAX_METRICS  # room for parallel requests

BATCHABLE = {"metrics", "params", "tags"}


@dataclass
class _Item:
    """One metric, param or tag, or a whole record of another kind, waiting for delivery."""

    kind: str  # "metric", "param", "tag" or the op of a non-batchable record
    value: Any  # the MLflow entity, or the record itself
    size: int
    offset: int | None  # set on the last item of a record: delivered up to here once sent


@dataclass
class _Batch:
    """One ``log_batch`` request's worth of items."""

    metrics: list[Metric] = field(default_factory=list)
    params: list[Param] = field(default_factory=list)
    tags: list[RunTag] = field(default_factory=list)
    count: int = 0

    @property
    def metrics_only(self) -> bool:
        return not self.params and not self.tags


class DeliveryStalled(Exception):
    """A step could not proceed for a reason retrying later may fix."""


class Delivery:
    """Delivers the records of ``journal`` through ``access``."""

    def __init__(self, journal: Journal, access: StoreAccess, *, live: bool) -> None:
        self.journal = journal
        self.access = access
        self.live = live
        self.state = journal.load_state()
        self.finished = False
        self.rejected = 0
        self.last_time: int | None = None
        self._items: deque[_Item] = deque()
        self._read_pos = self.state.offset
        self._create_attempted = False
        self._single_until = -1  # after a refused batch, deliver one record at a time
        self._parallel = 1  # requests in flight; grows while the store keeps up

    @property
    def run_id(self) -> str | None:
        return self.state.run_id

    def expect_existing(self) -> None:
        """An earlier attempt may have created the run: look for it before creating one."""
        self._create_attempted = True

    # -- reading ahead -----------------------------------------------------------------

    def _fill(self, complete: bool) -> None:
        if len(self._items) >= _LOOKAHEAD:
            return
        for end, record in self.journal.read(self._read_pos, complete=complete):
            self._read_pos = end
            self._queue(record, end)
            if len(self._items) >= _LOOKAHEAD:
                break

    def _queue(self, record: dict[str, Any], end: int) -> None:
        op = record.get("op")
        time = record.get("t")
        if isinstance(time, int):
            self.last_time = time
        if op not in BATCHABLE:
            self._items.append(_Item(str(op), record, 0, end))
            return
        items: list[_Item] = []
        data = record.get("d", {})
        if op == "metrics":
            step, timestamp = int(record.get("s", 0)), int(record["t"])
            for key, value in data.items():
                metric = Metric(key, float(value), timestamp, step)
                items.append(_Item("metric", metric, len(key) + 48, None))
        else:
            kind, entity = ("param", Param) if op == "params" else ("tag", RunTag)
            for key, value in data.items():
                items.append(_Item(kind, entity(key, str(value)), len(key) + len(value) + 32, None))
        if not items:  # an empty record still moves the delivered offset
            items.append(_Item("noop", record, 0, None))
        items[-1].offset = end
        self._items.extend(items)

    # -- delivering --------------------------------------------------------------------

    def step(self, *, complete: bool) -> int:
        """Deliver the next request's worth of records; return how many items went.

        Raises what the store raised when it could not be reached (the caller retries) and
        :class:`DeliveryStalled` when the run cannot be created yet.
        """
        self._fill(complete)
        if not self._items:
            if complete and not self.finished and self.state.run_id is not None:
                self._end_orphan()
                return 1
            return 0
        head = self._items[0]
        if head.kind == "run":
            self._create_run(head.value)
            return self._done(1)
        if self.state.run_id is None:
            raise DeliveryStalled(f"journal {self.journal.path} has no run record")
        if head.kind in ("metric", "param", "tag", "noop"):
            return self._send_batch()
        try:
            self._deliver_record(head.value)
        except Exception as exc:
            if not is_permanent(exc):
                raise
            self._reject(head.value, exc)
        return self._done(1)

    def _take_batch(self, start: int, single: bool) -> _Batch:
        """The largest request MLflow accepts from the batchable items at ``start``."""
        batch = _Batch()
        keys: set[tuple[str, str]] = set()
        size = 0
        for item in itertools.islice(self._items, start, None):
            if item.kind not in ("metric", "param", "tag", "noop"):
                break
            if batch.count >= MAX_ENTITIES or size + item.size > MAX_BYTES:
                break
            if item.kind == "metric":
                if len(batch.metrics) >= MAX_METRICS:
                    break
                batch.metrics.append(item.value)
            elif item.kind in ("param", "tag"):
                key = (item.kind, item.value.key)
                bucket: list[Any] = batch.params if item.kind == "param" else batch.tags
                limit = MAX_PARAMS if item.kind == "param" else MAX_TAGS
                if key in keys or len(bucket) >= limit:
                    break  # MLflow refuses a batch that sets the same key twice
                keys.add(key)
                bucket.append(item.value)
            size += item.size
            batch.count += 1
            if single and item.offset is not None:
                break
        return batch

    def _send_batch(self) -> int:
        single = self._read_pos_of_head() <= self._single_until
        batches = [self._take_batch(0, single)]
        # Metric points do not depend on each other's order (each keeps its step and time,
        # and the latest value is the largest (step, time, value)), so a store that serves
        # requests in parallel gets several batches at once; params and tags go one by one.
        while not single and len(batches) < self._parallel and batches[-1].metrics_only:
            following = self._take_batch(sum(batch.count for batch in batches), False)
            if following.count == 0 or not following.metrics_only:
                break
            batches.append(following)
        if len(batches) > 1:
            return self._send_in_parallel(batches)
        first = batches[0]
        try:
            if first.metrics or first.params or first.tags:
                self.access.log_batch(
                    self.state.run_id or "", first.metrics, first.params, first.tags
                )
        except Exception as exc:
            if not is_permanent(exc):
                self._parallel = 1
                raise
            if not single:
                # Find the record the store refuses by sending one record at a time.
                self._single_until = self._offset_of(first.count)
                return 0
            self._reject_items(first.count, exc)
        self._parallel = min(self._parallel * 2, self.access.parallel_requests)
        return self._done(first.count)

    def _send_in_parallel(self, batches: list[_Batch]) -> int:
        """Send metric batches at once and keep what the store took up to the first failure.

        After a failure, parallelism drops to one request, so that a busy or restarting
        server is not flooded with requests that time out; it grows back while requests
        succeed. The batches after a failure are sent again, which the store absorbs.
        """
        errors = self.access.log_metric_batches(
            self.state.run_id or "", [batch.metrics for batch in batches]
        )
        delivered = 0
        for batch, error in zip(batches, errors, strict=True):
            if error is not None:
                break
            delivered += batch.count
        failure = next((error for error in errors if error is not None), None)
        if failure is not None:
            self._parallel = 1
            if not delivered and is_permanent(failure):
                # Find the record the store refuses by sending one record at a time.
                self._single_until = self._offset_of(sum(batch.count for batch in batches))
                return 0
            if not delivered:
                raise failure
        return self._done(delivered)

    def _deliver_record(self, record: dict[str, Any]) -> None:
        op = record["op"]
        run_id = self.state.run_id or ""
        if op == "artifact":
            source = self.journal.files_dir / record["src"]
            self.access.log_artifacts(run_id, source, record.get("dst"))
        elif op == "model":
            source = self.journal.files_dir / record["src"]
            self.access.log_artifacts(run_id, source, record["dst"])
            if record.get("register"):
                model_source = f"{self.state.artifact_uri}/{record['dst']}"
                self.access.register_model(record["register"], model_source, run_id)
        elif op == "inputs":
            self.access.log_inputs(run_id, [_dataset_input(entry) for entry in record["datasets"]])
        elif op == "end":
            self.access.end_run(run_id, record["status"], record["t"])
            self.finished = True
        else:
            logger.warning("flowscope: skipped a record of unknown kind %r", op)

    def _create_run(self, record: dict[str, Any]) -> None:
        access = self.access
        experiment_id = access.experiment_id(record["experiment"])
        run = None
        if self._create_attempted or not self.live:
            run = access.find_run(experiment_id, self.journal.local_id)
        self._create_attempted = True
        if run is None:
            tags = dict(record.get("tags") or {})
            tags[LOCAL_ID_TAG] = self.journal.local_id
            parent = record.get("parent")
            if parent:
                tags[PARENT_TAG] = self._parent_run_id(parent, experiment_id)
            run = access.create_run(
                experiment_id,
                run_name=record.get("run_name"),
                start_time=record["t"],
                tags=tags,
                user=record.get("user"),
            )
        self.state.run_id = run.info.run_id
        self.state.experiment_id = experiment_id
        self.state.artifact_uri = run.info.artifact_uri

    def _parent_run_id(self, parent: dict[str, Any], experiment_id: str) -> str:
        if parent.get("run_id"):
            return str(parent["run_id"])
        local_id = parent["local_id"]
        state = load_state(self.journal.path.parent / f"{local_id}.state")
        if state.run_id:
            return state.run_id
        found = self.access.find_run(experiment_id, local_id)
        if found is None:
            raise DeliveryStalled(f"parent run {local_id} is not created yet")
        return str(found.info.run_id)

    def _end_orphan(self) -> None:
        """A journal whose process died before ending the run: the run was killed."""
        end_time = self.last_time
        if end_time is None:
            import time

            end_time = int(time.time() * 1000)
        self.access.end_run(self.state.run_id or "", "KILLED", end_time)
        self.finished = True

    # -- bookkeeping -------------------------------------------------------------------

    def _read_pos_of_head(self) -> int:
        # The offset at which the head item's record ends (an upper bound for its start).
        for item in self._items:
            if item.offset is not None:
                return item.offset
        return self._read_pos

    def _offset_of(self, count: int) -> int:
        offset = self.state.offset
        for index, item in enumerate(self._items):
            if index >= count:
                break
            if item.offset is not None:
                offset = item.offset
        return max(offset, self._read_pos_of_head())

    def _done(self, count: int) -> int:
        offset = None
        for _ in range(count):
            item = self._items.popleft()
            if item.offset is not None:
                offset = item.offset
        if offset is not None:
            self.state.offset = offset
            self.state.error = None
            self.journal.save_state(self.state)
        return count

    def _reject(self, record: dict[str, Any], exc: BaseException) -> None:
        self.rejected += 1
        self.journal.reject(record, str(exc))
        logger.warning(
            "flowscope: the tracking store refused a %s record of run %s (%s); it is kept in %s",
            record.get("op"),
            self.state.run_id,
            exc,
            self.journal.rejected_path,
        )

    def _reject_items(self, count: int, exc: BaseException) -> None:
        entities = [
            {
                "kind": item.kind,
                "key": getattr(item.value, "key", None),
                "value": getattr(item.value, "value", None),
            }
            for item in list(self._items)[:count]
        ]
        self._reject({"op": "batch", "items": entities}, exc)


def _dataset_input(entry: dict[str, Any]) -> DatasetInput:
    dataset = Dataset(
        name=entry["name"],
        digest=entry["digest"],
        source_type=entry["source_type"],
        source=entry["source"],
        schema=entry.get("schema"),
        profile=entry.get("profile"),
    )
    tags = [InputTag(key, str(value)) for key, value in (entry.get("tags") or {}).items()]
    return DatasetInput(dataset, tags)
