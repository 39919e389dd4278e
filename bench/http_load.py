"""A small closed-loop HTTP/1.1 load generator for loopback benchmarks.

C connections (keep-alive) each send a request, wait for the whole answer, and send the
next, until a request count or a time limit is reached. Requests are pre-encoded bytes and
answers are parsed only as far as status and Content-Length, so the generator spends far
less CPU per request than an HTTP library would: on a 2-core machine it shares the cores
with the server, and every cycle it saves is the server's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def encode(method: str, path: str, body: dict | None = None) -> bytes:
    """One request, ready to write to a keep-alive connection."""
    head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\n"
    if body is None:
        return (head + "\r\n").encode()
    data = json.dumps(body).encode()
    return (head + f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            ).encode() + data


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    latencies_ms: np.ndarray  # one per completed request
    failures: int  # answers other than 200, and broken connections
    seconds: float

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one answer; return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return status


async def load(host: str, port: int, request: Callable[[int], bytes], concurrency: int,
               total: int, max_seconds: float) -> LoadResult:
    """Send `total` requests (request(i) for i = 0, 1, ...) over `concurrency` connections,
    or as many as fit in max_seconds."""
    latencies: list[float] = []
    failures = 0
    next_index = 0
    started = time.perf_counter()
    deadline = started + max_seconds

    async def connection() -> None:
        nonlocal next_index, failures
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while next_index < total and time.perf_counter() < deadline:
                i, next_index = next_index, next_index + 1
                sent = time.perf_counter()
                writer.write(request(i))
                try:
                    status = await _answer(reader)
                except (asyncio.IncompleteReadError, ConnectionError):
                    failures += 1
                    return
                latencies.append(1e3 * (time.perf_counter() - sent))
                failures += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return LoadResult(concurrency, np.array(latencies), failures,
                      time.perf_counter() - started)
