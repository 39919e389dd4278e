"""Rank one user by reading blocks of the catalog in descending bound, stopping early.

bundle/blocks.py gives each block an upper bound U_b on every score model.onnx computes for
its items. The search scores blocks exactly (blocks.onnx: model.onnx's operators over the
blocks' slabs, the same bits) in descending U_b, a few at a time, each round up to GROWTH
times the items read so far, and stops when the next block's bound is below the n-th best
exact score τ found so far. Every item left unread is then in a block with U_b < τ, so it
scores below τ and can neither enter the top n nor tie with it; the top n of the items
read, ties to the lower catalog position as TopK breaks them, is model.onnx's.

Excluded positions (seen, retired, filtered out) are dropped from the scores read; a block
all of whose items are excluded is never read. Where the search has read `max_share` of the
catalog without stopping, or meets a non-finite bound or score, it answers None: the caller
takes the full pass (and counts it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from bundle import blocks
from bundle import format as fmt
from bundle.graph_io import padded
from bundle.layout import StateLayout

MAX_SHARE = 0.3  # past this share of the catalog read, the full pass is cheaper: give up
FIRST_ROUND = 4  # the first round reads the best blocks up to this many times n items
FIRST_SHARE = 1 / 256  # and at least this share of the catalog
GROWTH = 8  # each later round reads up to this many times the items read so far
NO_POSITIONS = np.zeros(0, np.int64)


@dataclass
class Read:
    """What one search read: items scored, blocks opened, rounds (onnxruntime calls)."""

    items: int = 0
    blocks: int = 0
    rounds: int = 0


class BlockRanker:
    """One session over a bundle's blocks.onnx, with the bundle's blocks."""

    def __init__(self, session: ort.InferenceSession, scoring: Mapping[str, Any],
                 arrays: Mapping[str, np.ndarray], n_items: int, max_share: float = MAX_SHARE):
        self.session, self.scoring, self.n_items = session, scoring, n_items
        self.max_share = max_share
        names = ("const_max", "radius", "centre_norm", "mag", "centre", "centre_p",
                 "centre_q", "centre_t")
        exported = {name: np.asarray(arrays[fmt.block_file(name)]) for name in names
                    if fmt.block_file(name) in arrays}
        self.summaries = blocks.for_requests(scoring, exported)  # a few MB, in float32
        self.order = np.asarray(arrays[fmt.block_file("order")])
        self.offsets = np.asarray(arrays[fmt.block_file("offsets")])
        self.sizes = np.diff(self.offsets)
        self.slots = blocks.slots(self.order, self.offsets)  # (B, S): what each slab holds
        self.block_of = np.empty(n_items, np.int32)  # each catalog position's block
        self.block_of[self.order] = np.repeat(np.arange(len(self.sizes), dtype=np.int32),
                                              self.sizes)
        self.smallest = int(self.sizes.min()) if len(self.sizes) else 0
        self.part = StateLayout.of(scoring).span("part")
        self.last = Read()  # what the latest search read (benches report it)

    @property
    def n_blocks(self) -> int:
        return len(self.sizes)

    def top_n(self, state: np.ndarray, n: int, exclude: Sequence[np.ndarray] | None
              ) -> tuple[np.ndarray, np.ndarray] | None:
        """One user's (state (1, D)) top n, best first, leaving out `exclude[0]`, as
        model.onnx answers it; None where the search gave up (module doc)."""
        self.last = read = Read()
        take = min(n, self.n_items)
        bound = blocks.bounds(self.scoring, self.summaries, state[0])
        if take <= 0 or not np.isfinite(bound).all():
            return None
        listed = np.sort(np.asarray(exclude[0], np.int64)) if exclude else NO_POSITIONS
        if len(listed) >= max(self.smallest, 1):  # enough to empty a block: skip the emptied
            gone = np.bincount(self.block_of[np.unique(listed)], minlength=self.n_blocks)
            bound = np.where(gone == self.sizes, -np.inf, bound)
        visit = np.argsort(-bound)  # the order among equal bounds is immaterial
        ranked, cumulative = bound[visit], np.cumsum(self.sizes[visit])
        best_at, best = NO_POSITIONS, np.zeros(0, np.float32)
        feed_state = np.ascontiguousarray(state, np.float32)
        done, budget = 0, self.max_share * self.n_items
        while done < len(visit) and ranked[done] > -np.inf:
            floor = best[take - 1] if len(best) >= take else -np.inf
            if ranked[done] < floor:
                break
            # this round: the next blocks whose bound reaches the floor, up to GROWTH times
            # the items read so far (the floor rises as they are read)
            reach = done + int(np.searchsorted(-ranked[done:], -floor, side="right"))
            want = (cumulative[done - 1] if done else 0) + max(
                FIRST_ROUND * take, FIRST_SHARE * self.n_items, GROWTH * read.items)
            stop = min(reach, max(done + 1, int(np.searchsorted(cumulative, want)) + 1))
            ids = visit[done:stop]
            done = stop
            read.blocks += len(ids)
            read.items += int(self.sizes[ids].sum())
            read.rounds += 1
            if read.items > budget:
                return None
            scores = self.session.run([fmt.ITEM_SCORES], {
                fmt.STATE: feed_state, fmt.BLOCK_IDS: ids[None]})[0][0]
            if not np.isfinite(scores).all():
                return None
            positions = self.slots[ids].ravel()
            keep = np.flatnonzero((positions >= 0) & (scores >= floor))  # below: out
            positions, scores = positions[keep], scores[keep]
            if len(listed):  # np.isin would sort or tabulate both sides every round
                at = np.minimum(np.searchsorted(listed, positions), len(listed) - 1)
                kept = listed[at] != positions
                positions, scores = positions[kept], scores[kept]
            best_at, best = _best(np.concatenate([best_at, positions]),
                                  np.concatenate([best, scores]), take)
        items = best_at[None]
        values = (best + np.float32(state[0, self.part[0]]))[None]  # model.onnx adds it after
        return padded(items, values.astype(np.float32), n)


def _best(positions: np.ndarray, scores: np.ndarray, take: int
          ) -> tuple[np.ndarray, np.ndarray]:
    """The `take` best (score descending, then position ascending), best first."""
    if len(scores) > take:
        cut = scores[np.argpartition(-scores, take - 1)[take - 1]]
        keep = scores >= cut
        positions, scores = positions[keep], scores[keep]
    order = np.lexsort((positions, -scores))[:take]
    return positions[order], scores[order]
