"""A window's predictions as a few arrays: how the monitor holds them and how they travel
to the helper process.

The request path appends one :class:`Observation` per request, pointing into
the model call that answered it. Held for a whole window, those objects would be what
the garbage collector walks on every full collection (the server freezes its start-up
objects), and its pauses would grow with the window. So the monitor's thread packs the
observations every half second into a :class:`Packed`: the rows of every request, in
order, as one array per input column, the probabilities as one matrix, and the requests
as columns, which the collector does not walk, which pickle as a few large buffers, and
from which :mod:`~.summary` builds the run with no Python object per request.

This module knows nothing of windows; :mod:`~.window` holds them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from flowscope.serving.explaining import RowExplanations
    from flowscope.serving.model import Predicted, ServedModel

Slices = list[tuple["Predicted", int, int]]


@dataclasses.dataclass(slots=True)  # one per request until packed: no per-instance dict
class Observation:
    """One answered request: its id, arrival, latency, and the rows ``offset`` to
    ``offset + rows`` of the model call (``batch``) that answered it."""

    request_id: str
    timestamp: float  # seconds since the epoch, when the request arrived
    latency: float  # seconds
    batch: Predicted
    offset: int
    rows: int
    explained: RowExplanations | None = None  # asked for with ?explain=true


@dataclasses.dataclass
class Packed:
    """Requests answered by one model version, as columns."""

    inputs: dict[str, np.ndarray]
    probabilities: np.ndarray | None
    labels: list[Any]  # a regression model's answers; a classifier's are its probabilities
    request_ids: list[str]
    times: np.ndarray  # per request: arrival, latency (seconds)
    rows: np.ndarray  # per request
    explained: dict[int, RowExplanations]  # by request, for those asked with ?explain

    @property
    def total(self) -> int:
        return int(self.rows.sum())


def call_slices(observations: Sequence[Observation]) -> Slices:
    """The observations' rows as (model call, start, stop), neighbours merged."""
    slices: Slices = []
    for o in observations:
        if slices and slices[-1][0] is o.batch and slices[-1][2] == o.offset:
            batch, start, _ = slices[-1]
            slices[-1] = (batch, start, o.offset + o.rows)
        else:
            slices.append((o.batch, o.offset, o.offset + o.rows))
    return slices


def pack(model: ServedModel, observations: Sequence[Observation]) -> Packed:
    """``observations`` of ``model`` as columns."""
    import numpy as np

    slices = call_slices(observations)
    # most often a slice is all of its model call's rows: then the call's arrays are taken
    # as they are, and many small calls cost a list entry per call and column
    whole = [start == 0 and stop == len(call.labels) for call, start, stop in slices]

    def gathered(arrays: list[Any]) -> list[Any]:
        return [
            array if full else array[start:stop]
            for array, full, (_, start, stop) in zip(arrays, whole, slices, strict=True)
        ]

    inputs: dict[str, np.ndarray] = {}
    probabilities: np.ndarray | None = None
    labels: list[Any] = []
    if observations:
        for name in model.schema.names:
            inputs[name] = np.concatenate(gathered([(c.inputs or {})[name] for c, _, _ in slices]))
        if observations[0].batch.probabilities is not None:
            probabilities = np.concatenate(gathered([c.probabilities for c, _, _ in slices]))
        else:  # regression: the labels are the answers
            labels = [x for part in gathered([c.labels for c, _, _ in slices]) for x in part]
    return Packed(
        inputs=inputs,
        probabilities=probabilities,
        labels=labels,
        request_ids=[o.request_id for o in observations],
        times=np.array([(o.timestamp, o.latency) for o in observations], np.float64).reshape(-1, 2),
        rows=np.array([o.rows for o in observations], dtype=np.int64),
        explained={i: o.explained for i, o in enumerate(observations) if o.explained},
    )


def merge(parts: Sequence[Packed]) -> Packed:
    """One :class:`Packed` holding ``parts`` one after the other."""
    import numpy as np

    parts = [part for part in parts if len(part.request_ids)]
    if len(parts) == 1:
        return parts[0]
    if not parts:
        return Packed({}, None, [], [], np.empty((0, 2)), np.empty(0, np.int64), {})
    explained: dict[int, RowExplanations] = {}
    start = 0
    for part in parts:
        explained.update({start + index: rows for index, rows in part.explained.items()})
        start += len(part.request_ids)
    first = parts[0]
    return Packed(
        inputs={name: np.concatenate([p.inputs[name] for p in parts]) for name in first.inputs},
        probabilities=None
        if first.probabilities is None
        else np.concatenate([p.probabilities for p in parts if p.probabilities is not None]),
        labels=[label for part in parts for label in part.labels],
        request_ids=[request for part in parts for request in part.request_ids],
        times=np.concatenate([part.times for part in parts]),
        rows=np.concatenate([part.rows for part in parts]),
        explained=explained,
    )
