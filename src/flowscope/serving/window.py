"""The monitor's windows in memory: each model version's predictions in the open window
(:class:`VersionGroup`) and a closed window or batch on its way to becoming inference
runs (:class:`WindowJob`), and how a group travels to the helper process packed.

The monitor fills these, the sinks (:mod:`~.writers`, :mod:`~.helper`) take them, and
:mod:`~.inference_run` writes each group as one run; none of those import each other
for them.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flowscope.serving.packing import Observation, Packed, merge, pack

if TYPE_CHECKING:
    from flowscope.serving.model import ServedModel


@dataclass
class VersionGroup:
    """The predictions of one model version in a window (or batch upload)."""

    model: ServedModel
    observations: list[Observation] = field(default_factory=list)
    errors: int = 0
    dropped: int = 0  # predictions left out of the window for lack of room
    packed: list[Packed] = field(default_factory=list)  # observations packed before

    @property
    def rows(self) -> int:
        return sum(o.rows for o in self.observations) + sum(p.total for p in self.packed)


@dataclass
class WindowJob:
    """A closed window (or a batch upload) handed to a sink: one run per group."""

    groups: list[VersionGroup]
    start: float
    end: float
    kind: str = "single"
    filename: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    resent: bool = False  # sent again to a new helper after the one before died

    @property
    def rows(self) -> int:
        return sum(group.rows for group in self.groups)


def packed(group: VersionGroup) -> Packed:
    """All of ``group``'s requests: those packed before and those still observed."""
    return merge([*group.packed, pack(group.model, group.observations)])


def bare(group: VersionGroup) -> VersionGroup:
    """``group`` without its requests and with its model without the pipeline: what goes
    to the helper beside the :class:`~.packing.Packed` requests."""
    model = dataclasses.replace(group.model, pipeline=None, fast=None)
    return dataclasses.replace(group, model=model, observations=[], packed=[])


def holding(group: VersionGroup, window: Packed) -> VersionGroup:
    """``group`` (as :func:`bare` left it) holding the requests of ``window``."""
    return dataclasses.replace(group, packed=[window])
