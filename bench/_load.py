"""A small closed-loop HTTP load generator for the serving benchmark.

``concurrency`` keep-alive connections each send the same POST, wait for the whole answer
and send again, for a bounded time or number of requests. It speaks just enough HTTP/1.1
over asyncio streams to cost the machine little, so that the servers measured, not the
client, get the CPU; both servers meet exactly the same client.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Cell:
    """What one load run measured."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    cpu_server: float = 0.0  # CPU seconds the server process spent while measured
    cpu_helpers: float = 0.0  # and its child processes (the monitor's helper)
    cpu_monitor: float = 0.0  # of cpu_server, what the server's monitor thread spent

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """Latency percentile in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index] * 1000

    def add(self, other: Cell) -> None:
        """Pool ``other``'s measurements into this one."""
        self.requests += other.requests
        self.errors += other.errors
        self.seconds += other.seconds
        self.latencies.extend(other.latencies)
        self.cpu_server += other.cpu_server
        self.cpu_helpers += other.cpu_helpers
        self.cpu_monitor += other.cpu_monitor

    def cpu_us(self, helpers: bool = False) -> float:
        """CPU microseconds per request of the server process (or of its helpers)."""
        spent = self.cpu_helpers if helpers else self.cpu_server
        return spent / self.requests * 1e6 if self.requests else float("nan")

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) * 1000 if self.latencies else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(99)


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if not chunked:
        return status, await reader.readexactly(length)
    body = b""
    while True:
        size = int((await reader.readline()).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, body
        body += chunk[:-2]


async def _client(
    port: int, request: bytes, until: float, budget: list[int], cell: Cell | None
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < until and budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            status, _ = await _read_answer(reader)
            if cell is not None:
                cell.latencies.append(time.perf_counter() - started)
                cell.requests += 1
                cell.errors += status != 200
    finally:
        writer.close()


def post_request(port: int, path: str, body: bytes, authorization: str | None = None) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        + (f"Authorization: {authorization}\r\n" if authorization else "")
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _load(
    port: int, request: bytes, concurrency: int, seconds: float, limit: int, measured: bool
) -> Cell:
    cell = Cell()
    budget = [limit]
    started = time.perf_counter()
    await asyncio.gather(
        *(
            _client(port, request, started + seconds, budget, cell if measured else None)
            for _ in range(concurrency)
        )
    )
    cell.seconds = time.perf_counter() - started
    return cell


def run_load(
    port: int,
    request: bytes,
    *,
    concurrency: int,
    seconds: float,
    warmup: float = 1.0,
    limit: int = 20_000,
    pid: int | None = None,
) -> Cell:
    """``concurrency`` clients posting ``request`` for ``seconds`` (or ``limit`` requests),
    after ``warmup`` seconds of unmeasured load; with ``pid``, also the CPU time that
    process and its children spent while measured."""
    if warmup > 0:
        asyncio.run(_load(port, request, concurrency, warmup, limit, measured=False))
    before = cpu_seconds(pid) if pid is not None else (0.0, 0.0)
    cell = asyncio.run(_load(port, request, concurrency, seconds, limit, measured=True))
    if pid is not None:
        after = cpu_seconds(pid)
        cell.cpu_server, cell.cpu_helpers = after[0] - before[0], after[1] - before[1]
    return cell


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process, and of its living descendants (Linux)."""

    def spent(one: int) -> float:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime

    return spent(pid), sum(spent(child) for child in _descendants(pid))


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, in MiB (Linux /proc)."""
    total = 0.0
    for one in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = Path(f"/proc/{pid}/task").iterdir()
        children = [
            int(child) for task in tasks for child in (task / "children").read_text().split()
        ]
    except OSError:
        return found
    for child in children:
        found += [child, *_descendants(child)]
    return found
