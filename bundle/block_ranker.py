"""Rank one user by reading blocks of the catalog in descending bound, stopping early.

bundle/blocks.py gives each block an upper bound U_b on every score model.onnx computes for
its items. The search scores blocks exactly (blocks.onnx: model.onnx's operators over the
gathered rows, the same bits) in descending U_b, a few at a time, and stops when the next
block's bound is below the n-th best exact score τ found so far. Every item left unread is
then in a block with U_b < τ, so it scores below τ and cannot enter the top n, nor tie with
it; the top n of the items read, ties to the lower catalog position as TopK breaks them, is
model.onnx's.

Excluded positions (seen, retired, filtered out) are dropped from the blocks before they are
scored; a block left empty costs nothing. Where the search has read `max_share` of the
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
        self.summaries = {name: np.asarray(arrays[fmt.block_file(name)]) for name in names
                          if fmt.block_file(name) in arrays}  # a few MB: read once
        self.order = np.asarray(arrays[fmt.block_file("order")])
        self.offsets = np.asarray(arrays[fmt.block_file("offsets")])
        self.sizes = np.diff(self.offsets)
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
        visit = np.argsort(-bound, kind="stable")
        ranked = bound[visit]
        cumulative = np.cumsum(self.sizes[visit])
        left_out = np.unique(np.asarray(exclude[0], np.int64)) if exclude else None
        best_at, best = np.zeros(0, np.int64), np.zeros(0, np.float32)
        feed_state = np.ascontiguousarray(state, np.float32)
        done, budget = 0, self.max_share * self.n_items
        while done < len(visit):
            floor = best[take - 1] if len(best) >= take else -np.inf
            if ranked[done] < floor:
                break
            # this round: the next blocks whose bound reaches the floor, up to doubling the
            # items read so far (the floor rises as they are read)
            reach = done + int(np.searchsorted(-ranked[done:], -floor, side="right"))
            want = (cumulative[done - 1] if done else 0) + max(FIRST_ROUND * take,
                                                               read.items)
            stop = min(reach, max(done + 1, int(np.searchsorted(cumulative, want)) + 1))
            positions = np.concatenate([self.order[self.offsets[b]:self.offsets[b + 1]]
                                        for b in visit[done:stop]])
            if left_out is not None and len(left_out):
                positions = positions[~np.isin(positions, left_out, assume_unique=False)]
            read.blocks += stop - done
            read.items += len(positions)
            done = stop
            if read.items > budget:
                return None
            if not len(positions):
                continue
            read.rounds += 1
            scores = self.session.run([fmt.ITEM_SCORES], {
                fmt.STATE: feed_state, fmt.POSITIONS: positions[None]})[0][0]
            if not np.isfinite(scores).all():
                return None
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
