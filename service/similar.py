"""Similar items and diversity: what the model itself says of two items (docs/math.md,
Similar items and Diversity).

`similar` answers GET and POST /items/{item_id}/similar with the exact top n of the request's
catalog (the bundle's items and the added ones, less the retired, less the item itself, less
what a filter leaves out) under one of two measures:

    history  a model with a history field, for an item the field knows: the scores of an
             empty profile whose window holds that one item, ranked as /recommend ranks a
             user (the same state build, the same ranker): "who engaged with X engages next
             with"
    pairs    otherwise (no history field, or an added item, which no window holds): the
             model's pair term between the two items' rows (bundle/item_similarity.py), one
             vectorised pass over the catalog

`diversified` re-ranks /recommend's exact top K by maximal marginal relevance under the pair
measure, and `list_similarity` is every answer's intra-list similarity under it.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from bundle import top_n_of
from bundle.item_similarity import ItemSimilarity, intra_list_similarity, mmr, symmetric
from service import union_top
from service.errors import NoItemSimilarity, RetiredItem, UnknownItems
from service.ranking import Ranker
from service.served_model import ServedModel
from service.union_catalog import UnionCatalog

Measure = Literal["history", "pairs"]
POOL_FLOOR, POOL_FACTOR, POOL_CAP = 50, 3, 300  # K = max(n, min(max(3n, 50), 300))


def position_of(catalog: UnionCatalog, item_id: str) -> int:
    """The union position of the item a request names: a 404 naming it where the catalog
    does not serve it (unknown, or retired, which its body says)."""
    found = int(catalog.position_of([item_id])[0])
    if found >= 0:
        return found
    if item_id in catalog.retired_ids:
        held = catalog.catalog.index_of([item_id])[0] >= 0
        raise RetiredItem(item_id, "bundle" if held else "added")
    raise UnknownItems([item_id])


def measure_of(model: ServedModel, catalog: UnionCatalog, position: int) -> Measure:
    """`history` where the model has a history field that knows the item, else `pairs`."""
    history = model.profiles.history
    if model.incremental is not None and history is not None \
            and history.knows(catalog.item_id(position)):
        return "history"
    return "pairs"


async def similar(ranker: Ranker, model: ServedModel, catalog: UnionCatalog, position: int,
                  n: int, allowed: np.ndarray | None) -> tuple[Measure, union_top.Ranked]:
    """The n items most similar to the item at union `position`, best first, among those
    `allowed` (size,) lets through (all the catalog serves if None); the item itself never."""
    measure = measure_of(model, catalog, position)
    if measure == "history":
        assert model.incremental is not None
        row = model.profiles.encode(None, {})  # an empty profile, its window [the item]
        state, _ = model.incremental.build(row.idx, row.val, [catalog.item_id(position)])
        itself = np.array([position], np.int64)
        return measure, await union_top.top(ranker, model, catalog, state, n, itself, allowed)
    scores = pair_scores(require(model), catalog, position)
    keep = catalog.available() if allowed is None else allowed.copy()
    keep[position] = False
    scores[~keep] = -np.inf
    best, best_scores = top_n_of(scores[None], n)
    found = best[0] >= 0
    return measure, (best[0][found], best_scores[0][found])


def require(model: ServedModel) -> ItemSimilarity:
    """The model's pair measure, or a 409 for a bundle exported before added items."""
    if model.similarity is None:
        raise NoItemSimilarity(model.version)
    return model.similarity


def pair_scores(similarity: ItemSimilarity, catalog: UnionCatalog, position: int
                ) -> np.ndarray:
    """sim(item, b) (size,) float32 for every union position b: the item's gains over every
    item-side feature, then one gather over the bundle's rows and one over the added ones."""
    idx, val = catalog.rows(np.array([position]))
    g = similarity.gains(idx[0], val[0])
    scores = np.empty(catalog.size, np.float32)
    scores[:catalog.bundle_size] = similarity.gather(g, *catalog.catalog.rows())
    scores[catalog.bundle_size:] = similarity.gather(g, catalog.idx, catalog.val)
    return scores


def pool_size(n: int) -> int:
    """K, the exact top K that diversity re-ranks to n: 3n, at least 50, at most 300 (or n
    where n is more)."""
    return max(n, min(max(POOL_FACTOR * n, POOL_FLOOR), POOL_CAP))


def list_similarity(model: ServedModel, catalog: UnionCatalog, positions: np.ndarray
                    ) -> np.ndarray | None:
    """The symmetric pair measure (K, K) among union positions; None where the bundle has
    no item-side tables (exported before added items)."""
    if model.similarity is None:
        return None
    return symmetric(model.similarity.among(*catalog.rows(positions)))


def diversified(model: ServedModel, catalog: UnionCatalog, ranked: union_top.Ranked, n: int,
                diversity: float) -> union_top.Ranked:
    """n of the ranked top K, in maximal-marginal-relevance order (bundle/item_similarity.py,
    `mmr`), each with its own score."""
    positions, scores = ranked
    sim = symmetric(require(model).among(*catalog.rows(positions)))
    order = mmr(scores, sim, n, diversity)
    return positions[order], scores[order]


def ils(model: ServedModel, catalog: UnionCatalog, positions: np.ndarray) -> float | None:
    """An answer's intra-list similarity: the mean pair measure over its pairs of items."""
    sim = list_similarity(model, catalog, positions)
    return None if sim is None else intra_list_similarity(sim)
