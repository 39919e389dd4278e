"""Whole-catalog top n for the /recommend routes, in one of three ways (GMLREC_RANKING):

    inline   the onnxruntime call runs on the event loop
    thread   it runs in a worker thread (onnxruntime releases the GIL), so the loop parses
             and answers other requests meanwhile
    batch    like thread, and the users that arrive while a call runs are stacked into the
             next call's state matrix: one (B, D) x catalog product instead of B; a request
             alone in the worker runs inline (nobody could share its call, and the hop to a
             thread would only add to its latency)

bench/serve.py measures all three side by side (bench/RESULTS.md, section serve). batch is
the default: it raised /recommend's requests/s at concurrency 8 and 32 on both benchmark
bundles, and a lone request takes the inline path, so concurrency 1 is unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from service.served_model import ServedModel

MODES = ("inline", "thread", "batch")
MAX_BATCH = 64  # users per stacked call: bounds the (B, N) score matrix
# ...and so does this, for large catalogs: onnxruntime keeps its largest call's buffers (about
# 30 bytes a user and item for GML-FM), so 64 users over a million items would hold 2 GB in
# every worker; past a million cells a call is long enough that stacking saves little anyway
MAX_CELLS = 1_000_000


def stack_limit(n_items: int) -> int:
    """Users per stacked call over a catalog of n_items: 64 up to 15,625 items, then fewer,
    one from 500,001 items on."""
    return max(1, min(MAX_BATCH, MAX_CELLS // max(1, n_items)))


class Ranker:
    def __init__(self, mode: str = "batch", alone: Callable[[], bool] = lambda: False,
                 threads: int = 1):
        self.mode, self.alone = mode, alone
        self.pool = ThreadPoolExecutor(threads, "gmlrec-rank") if mode != "inline" else None
        self.pending: list[_Wanted] = []
        self.draining = False

    async def top(self, model: ServedModel, state: np.ndarray, n: int, exclude: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """The n best catalog positions for one state (D,), best first, leaving out
        `exclude`; fewer where fewer remain."""
        if self.mode == "inline" or (self.mode == "batch" and self.alone()
                                     and not self.draining):
            return model.top_n(state[None], n, [exclude])[0]
        loop = asyncio.get_running_loop()
        if self.mode == "thread":
            return (await loop.run_in_executor(self.pool, model.top_n, state[None], n,
                                               [exclude]))[0]
        wanted = _Wanted(model, state, n, exclude, loop.create_future())
        self.pending.append(wanted)
        if not self.draining:
            self.draining = True
            loop.create_task(self._drain())
        return await wanted.answer

    async def _drain(self) -> None:
        """Serve the queue in stacked calls until it is empty; one call at a time, so the
        requests that arrive during a call make up the next."""
        loop = asyncio.get_running_loop()
        try:
            while self.pending:
                model = self.pending[0].model  # never stack two versions in one call
                batch = [w for w in self.pending if w.model is model][
                    :stack_limit(model.catalog.size)]
                self.pending = [w for w in self.pending if w not in batch]
                n = max(w.n for w in batch)
                states = np.stack([w.state for w in batch])
                try:
                    rows = await loop.run_in_executor(self.pool, model.top_n, states, n,
                                                      [w.exclude for w in batch])
                except Exception as err:  # a failed call fails its requests, not the queue
                    for w in batch:
                        w.answer.set_exception(err)
                    continue
                for w, (items, scores) in zip(batch, rows):
                    w.answer.set_result((items[:w.n], scores[:w.n]))
        finally:
            self.draining = False

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False)


@dataclass(eq=False)
class _Wanted:
    model: ServedModel
    state: np.ndarray
    n: int
    exclude: np.ndarray
    answer: asyncio.Future = field(repr=False)
