"""Delivering what dead processes left in the journal: ``flowscope sync`` and its status."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowscope._retry import Backoff
from flowscope.config import Settings
from flowscope.tracking.delivery import Delivery
from flowscope.tracking.journal import Journal, decode, journal_paths, load_state
from flowscope.tracking.store import StoreAccess

logger = logging.getLogger(__name__)

_FIRST_BACKOFF = 0.2


@dataclass
class JournalStatus:
    """What one journal still holds."""

    local_id: str
    experiment: str | None
    run_name: str | None
    run_id: str | None
    pending_bytes: int
    in_use: bool  # a living process is writing or delivering it
    rejected: int
    error: str | None

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


@dataclass
class SyncResult:
    """What one ``sync`` delivered."""

    delivered: list[str]  # run ids whose journals are now fully delivered
    skipped: list[str]  # local ids of journals owned by living processes
    failed: dict[str, str]  # local id -> why it could not be delivered now
    rejected: int  # records the store refused for good (kept in .rejected files)


def status(settings: Settings) -> list[JournalStatus]:
    """Every journal in the journal folder, with what is left to deliver."""
    rows = []
    for path in journal_paths(settings.journal_dir):
        state = load_state(path.with_suffix(".state"))
        header = _header(path)
        rejected_path = path.with_suffix(".rejected")
        rejected = len(rejected_path.read_text().splitlines()) if rejected_path.exists() else 0
        try:
            pending = max(path.stat().st_size - state.offset, 0)
        except FileNotFoundError:
            continue
        rows.append(
            JournalStatus(
                local_id=path.name.removesuffix(".journal"),
                experiment=header.get("experiment"),
                run_name=header.get("run_name"),
                run_id=state.run_id,
                pending_bytes=pending,
                in_use=Journal.is_owned(path),
                rejected=rejected,
                error=state.error,
            )
        )
    return rows


def sync(
    settings: Settings,
    *,
    deadline: float | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> SyncResult:
    """Deliver every journal no living process owns; runs left unfinished by a killed
    process are marked KILLED at the time of their last record.

    ``deadline`` (seconds) bounds how long one journal's delivery keeps retrying an
    unreachable store; ``on_progress`` is called with the bytes each step delivered.
    """
    access = StoreAccess(settings)
    result = SyncResult(delivered=[], skipped=[], failed={}, rejected=0)
    for path in journal_paths(settings.journal_dir):
        journal = Journal.claim(path)
        local_id = path.name.removesuffix(".journal")
        if journal is None:
            if path.exists():
                result.skipped.append(local_id)
            continue
        try:
            run_id = _deliver(journal, access, deadline=deadline, on_progress=on_progress)
        except Exception as exc:
            state = journal.load_state()
            state.error = f"{type(exc).__name__}: {exc}"
            journal.save_state(state)
            result.failed[local_id] = state.error
            journal.close()
            continue
        result.delivered.append(run_id)
    result.rejected = sum(
        len(path.read_text().splitlines())
        for path in settings.journal_dir.glob("*.rejected")
        if settings.journal_dir.is_dir()
    )
    return result


def _deliver(
    journal: Journal,
    access: StoreAccess,
    *,
    deadline: float | None,
    on_progress: Callable[[int], None] | None,
) -> str:
    delivery = Delivery(journal, access, live=False)
    started = time.monotonic()
    backoff = Backoff(_FIRST_BACKOFF, access.settings.max_backoff)
    while not delivery.finished:
        before = delivery.state.offset
        try:
            delivery.step(complete=True)
        except Exception:
            if deadline is not None and time.monotonic() - started > deadline:
                raise
            backoff.pause()
            continue
        backoff.reset()
        if on_progress is not None and delivery.state.offset > before:
            on_progress(delivery.state.offset - before)
    run_id = delivery.run_id or journal.local_id
    journal.remove()
    return run_id


# Which (journal folder, store) pairs this process has already looked at for orphans:
# recovery is a once-per-process chore, not something every run should repeat.
_recovery_started: set[tuple[Path, str]] = set()
_recovery_lock = threading.Lock()


def recover_in_background(settings: Settings) -> None:
    """Once per process and journal folder, deliver orphaned journals in a daemon thread."""
    key = (settings.journal_dir, settings.tracking_uri)
    with _recovery_lock:
        if key in _recovery_started:
            return
        _recovery_started.add(key)
    journal_dir = settings.journal_dir
    orphans = [path for path in journal_paths(journal_dir) if not Journal.is_owned(path)]
    if not orphans:
        return

    def recover() -> None:
        try:
            result = sync(settings, deadline=60.0)
        except Exception as exc:  # never let recovery disturb the run that started it
            logger.warning("flowscope: delivering older journals failed: %s", exc)
            return
        if result.delivered:
            logger.warning(
                "flowscope: delivered %d run(s) a previous process left in %s",
                len(result.delivered),
                journal_dir,
            )

    threading.Thread(target=recover, name="flowscope-recovery", daemon=True).start()


def _header(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            record = decode(handle.readline().rstrip(b"\n"))
    except OSError:
        return {}
    return record or {}
