"""The append-only journal of one run: every record is on disk before the SDK call returns.

A journal is three things in the journal folder, named by the run's local id:

- ``<id>.journal``: one line per record, ``<crc32 as 8 hex digits> <json>\\n``, written with a
  single ``write`` on an ``O_APPEND`` descriptor, so a killed process leaves at most one torn
  last line (no newline, or a bad checksum), which readers skip with a warning;
- ``<id>.state``: what has been delivered (the MLflow run id and the byte offset up to which
  every record is in the store), replaced atomically after each delivery;
- ``<id>.files/``: copies of artifacts and saved models, so they survive their source.

The process that owns a journal holds an exclusive ``flock`` on it for as long as it lives;
the kernel drops the lock when the process dies, which is how ``flowscope sync`` tells an
orphan from a journal still being written.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

SUFFIX = ".journal"
_READ_CHUNK = 1 << 20


@dataclass
class DeliveryState:
    """How far a journal has been delivered; persisted in ``<id>.state``."""

    run_id: str | None = None
    experiment_id: str | None = None
    artifact_uri: str | None = None
    offset: int = 0
    error: str | None = None


def encode(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, separators=(",", ":"), default=str).encode()
    return b"%08x %s\n" % (zlib.crc32(body), body)


def decode(line: bytes) -> dict[str, Any] | None:
    """The record in one line without its newline, or None if the line is damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class Journal:
    """One run's journal, opened by the process that writes or delivers it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.local_id = path.name[: -len(SUFFIX)]
        self._fd = fd
        self._read_fd: int | None = None
        self._warned_at: set[int] = set()  # damaged records are reported once, not per pass

    # -- opening -----------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, local_id: str, first_record: dict[str, Any]) -> Journal:
        """A new journal holding ``first_record``, locked by this process.

        The file is written and locked under a temporary name and then renamed, so that
        ``sync`` never sees a journal that is not yet owned.
        """
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"{local_id}{SUFFIX}"
        temporary = directory / f".{local_id}.new"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        journal = cls(final, fd)
        journal.append(first_record)
        os.rename(temporary, final)
        return journal

    @classmethod
    def claim(cls, path: Path) -> Journal | None:
        """Open an existing journal for delivery if no living process owns it."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if not path.exists():  # delivered and removed by its owner while we waited
            os.close(fd)
            return None
        return cls(path, fd)

    @staticmethod
    def is_owned(path: Path) -> bool:
        """True while a living process holds the journal's lock."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    # -- writing -----------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        data = encode(record)
        written = os.write(self._fd, data)
        while written < len(data):  # short writes happen only on a full disk or a signal
            written += os.write(self._fd, data[written:])

    @property
    def files_dir(self) -> Path:
        return self.path.with_suffix(".files")

    def stash_path(self, name: str) -> Path:
        """A fresh place under ``<id>.files/`` for an artifact copied into the journal."""
        self.files_dir.mkdir(exist_ok=True)
        index = sum(1 for _ in self.files_dir.iterdir())
        return self.files_dir / f"{index:05d}" / name

    # -- reading -----------------------------------------------------------------------

    def read(self, offset: int, *, complete: bool) -> Iterator[tuple[int, dict[str, Any]]]:
        """Yield ``(end_offset, record)`` for every whole record after ``offset``.

        A last line without its newline is still being written while the owner lives; when
        ``complete`` (the owner is gone) it is a torn record and is skipped with a warning.
        """
        if self._read_fd is None:
            self._read_fd = os.open(self.path, os.O_RDONLY)
        position = offset
        pending = b""
        while True:
            chunk = os.pread(self._read_fd, _READ_CHUNK, position + len(pending))
            if not chunk:
                break
            pending += chunk
            lines = pending.split(b"\n")
            pending = lines.pop()
            for line in lines:
                position += len(line) + 1
                record = decode(line)
                if record is None:
                    if position in self._warned_at:
                        continue
                    self._warned_at.add(position)
                    logger.warning(
                        "flowscope: skipped a damaged record at byte %d of %s",
                        position - len(line) - 1,
                        self.path,
                    )
                    continue
                yield position, record
        if pending and complete and position not in self._warned_at:
            self._warned_at.add(position)
            logger.warning(
                "flowscope: skipped a torn last record (%d bytes, the writing process was "
                "killed mid-write) in %s",
                len(pending),
                self.path,
            )

    def size(self) -> int:
        return self.path.stat().st_size

    # -- delivery state ----------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.path.with_suffix(".state")

    def load_state(self) -> DeliveryState:
        return load_state(self.state_path)

    def save_state(self, state: DeliveryState) -> None:
        temporary = self.state_path.with_suffix(".state.tmp")
        temporary.write_text(json.dumps(asdict(state)))
        os.replace(temporary, self.state_path)

    @property
    def rejected_path(self) -> Path:
        return self.path.with_suffix(".rejected")

    def reject(self, record: dict[str, Any], reason: str) -> None:
        """Keep a record the store refused for good, with the reason, beside the journal."""
        with self.rejected_path.open("a") as out:
            out.write(json.dumps({"reason": reason, "record": record}, default=str) + "\n")

    # -- the end -----------------------------------------------------------------------

    def close(self) -> None:
        for fd in (self._read_fd, self._fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._read_fd = None
        self._fd = -1

    def remove(self) -> None:
        """Delete a fully delivered journal (a ``.rejected`` file is kept for the user)."""
        shutil.rmtree(self.files_dir, ignore_errors=True)
        self.state_path.unlink(missing_ok=True)
        self.path.unlink(missing_ok=True)
        self.close()


def load_state(path: Path) -> DeliveryState:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return DeliveryState()
    known = DeliveryState.__dataclass_fields__
    return DeliveryState(**{key: value for key, value in data.items() if key in known})


def journal_paths(directory: Path) -> list[Path]:
    """Every journal in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    paths = [path for path in directory.iterdir() if path.name.endswith(SUFFIX)]
    return sorted(paths, key=lambda path: path.stat().st_mtime)
