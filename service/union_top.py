"""Scores and the exact top n over a request's catalog: the bundle's items and the added ones.

The union's top n is among the bundle's top n and the added items' top n, so it is ranked as
both merged: the bundle's through the ranker (service/ranking.py: onnxruntime, batched, the
retired and seen positions excluded), the added items' in numpy (AddedItems.score, O(A) dot
products for the linear family), then the two lists sorted together. Ties go to the lower
union position, as the bundle's top n breaks them: a bundle item before an added one, added
items in the overlay's order. A catalog without added items costs what it did without
overlays: one ranker call.
"""

from __future__ import annotations

import numpy as np

from bundle import top_n_of
from service import filters
from service.ranking import Ranker
from service.served_model import ServedModel
from service.union_catalog import NO_POSITIONS, UnionCatalog

Ranked = tuple[np.ndarray, np.ndarray]  # union positions (int64), scores (float32), best first
NO_SCORES = np.zeros(0, np.float32)


async def top(ranker: Ranker, model: ServedModel, catalog: UnionCatalog, state: np.ndarray,
              n: int, seen: np.ndarray, allowed: np.ndarray | None = None) -> Ranked:
    """The n best items of `catalog` for one state (D,), leaving out the union positions
    `seen` and, where given, those `allowed` (size,) bool does not let through; fewer
    where fewer remain."""
    size = catalog.bundle_size
    if allowed is None:
        bundle_seen = seen[seen < size]
        excluded = np.union1d(bundle_seen, catalog.retired) if len(catalog.retired) \
            else bundle_seen
        rows = None
        if catalog.added_count and len(seen) and seen.max() >= size:
            keep = np.ones(catalog.added_count, bool)
            keep[seen[seen >= size] - size] = False
            rows = np.flatnonzero(keep)
    else:
        allowed = allowed.copy()
        allowed[seen] = False
        if allowed.sum() <= filters.DIRECT_SHARE * catalog.size:  # score just those
            return best_of(model, catalog, state, np.flatnonzero(allowed), n)
        excluded = np.flatnonzero(~allowed[:size])
        rows = np.flatnonzero(allowed[size:])
    ranked = await ranker.top(model, state, n, excluded)
    if not catalog.added_count:
        return ranked
    return _merged(ranked, _best_added(catalog, state, n, rows), n)


def _best_added(catalog: UnionCatalog, state: np.ndarray, n: int, rows: np.ndarray | None
                ) -> Ranked:
    """The n best of the added items `rows` (all if None), as union positions."""
    if rows is not None and len(rows) == 0:
        return NO_POSITIONS, NO_SCORES
    scores = catalog.added_scores(state, rows)
    best, best_scores = top_n_of(scores[None], n)
    best, best_scores = best[0], best_scores[0]
    best, best_scores = best[best >= 0], best_scores[best >= 0]
    chosen = best if rows is None else rows[best]
    return catalog.bundle_size + chosen, best_scores


def _merged(first: Ranked, second: Ranked, n: int) -> Ranked:
    """The n best of two ranked lists, ties to the lower position."""
    positions = np.concatenate([first[0], second[0]]).astype(np.int64)
    scores = np.concatenate([first[1], second[1]]).astype(np.float32)
    order = np.lexsort((positions, -scores))[:n]
    return positions[order], scores[order]


def score(model: ServedModel, catalog: UnionCatalog, state: np.ndarray,
          positions: np.ndarray) -> np.ndarray:
    """One user's state (D,) and union positions (C,) -> scores (C,) float32: the bundle's
    through ServedModel.score, the added items' through their parts."""
    added = positions >= catalog.bundle_size
    if not added.any():
        return model.score(state, positions)
    scores = np.empty(len(positions), np.float32)
    if not added.all():
        scores[~added] = model.score(state, positions[~added])
    scores[added] = catalog.added_scores(state, positions[added] - catalog.bundle_size)
    return scores


def best_of(model: ServedModel, catalog: UnionCatalog, state: np.ndarray,
            candidates: np.ndarray, n: int) -> Ranked:
    """The n best of `candidates` (union positions) for one state, best first; ties go to
    the lower position, as the whole-catalog top n breaks them."""
    if len(candidates) == 0:
        return NO_POSITIONS, NO_SCORES
    scores = score(model, catalog, state, candidates)
    order = np.lexsort((candidates, -scores))[:n]
    return candidates[order], scores[order]
