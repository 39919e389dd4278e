"""Admission: at most GMLREC_MAX_ACTIVE requests of a worker doing work at once.

The rest wait here, before touching the store, so a burst cannot keep the event loop busy
past the store's timeouts (which would read as a Redis fault). The gate also knows how many
requests are here at all, which tells the batching ranker whether anyone could share a call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator


class Gate:
    def __init__(self, limit: int):
        self._slots = asyncio.Semaphore(limit)
        self.present = 0  # requests admitted or waiting to be

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        self.present += 1
        try:
            async with self._slots:
                yield
        finally:
            self.present -= 1
