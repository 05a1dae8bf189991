"""What travels from the serving process to the monitor's helper: pickled messages whose
arrays go out of band through a spill file in memory."""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection


def send_message(conn: Connection, message: Any) -> str | None:
    """Send ``message``: pickled, with its arrays out of band in a spill file in memory
    (``/dev/shm`` where there is one), so that the sender copies them once, in the
    kernel. Returns the spill file, which the receiver deletes once it has read it."""
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    spill: str | None = None
    sizes: list[int] = []
    if buffers:
        try:
            spill, sizes = _spill(buffers, _spill_dir())
        except OSError:  # /dev/shm full (a container's is often 64 MB): the disk, then
            spill, sizes = _spill(buffers, None)
    try:
        conn.send((head, spill, sizes))
    except BaseException:
        if spill is not None:
            os.unlink(spill)
        raise
    return spill


def _spill(buffers: list[pickle.PickleBuffer], folder: str | None) -> tuple[str, list[int]]:
    fd, spill = tempfile.mkstemp(prefix="flowscope-window-", dir=folder)
    sizes = []
    try:
        with os.fdopen(fd, "wb") as handle:
            for buffer in buffers:
                raw = buffer.raw()
                handle.write(raw)
                sizes.append(raw.nbytes)
    except BaseException:
        os.unlink(spill)
        raise
    return spill, sizes


def receive_message(conn: Connection) -> Any:
    head, spill, sizes = conn.recv()
    buffers: list[memoryview] = []
    if spill is not None:
        data = bytearray(sum(sizes))
        with open(spill, "rb") as handle:
            handle.readinto(data)
        os.unlink(spill)
        view, offset = memoryview(data), 0
        for size in sizes:
            buffers.append(view[offset : offset + size])
            offset += size
    return pickle.loads(head, buffers=buffers)


def _spill_dir() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def forget(spill: str | None) -> None:
    """Delete a spill file the receiver may not have read (its sender let go of it)."""
    if spill is not None:
        with contextlib.suppress(OSError):
            os.unlink(spill)
