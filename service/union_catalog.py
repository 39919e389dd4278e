"""The catalog a request ranks: the bundle's items less the retired ones, then the added items
the bundle does not hold, as one view per (model version, overlay version).

Union positions number the view's items: p < N is the bundle's catalog position p
(service/catalog.py), p = N + a the a-th added item it serves, in the overlay's order
(service/overlay.py). Ranking breaks score ties by union position, so an added item comes
after every bundle item, and added items in the order they were first added.

Which added items a view serves: those neither retired nor held by the bundle (an id the
bundle holds is scored by the bundle's vectors, so a refit that learned the item wins), and
only where the bundle can score items from their features (`Bundle.item_features_supported`:
an older bundle serves its own catalog, less the retired items). An added item's values are
encoded against this model version; a field the version cannot take (a newer bundle without
it) is dropped, as a stored profile's is.

A new overlay version usually differs from the one before by an item or two, so a view is
built from the newest one before it: an added item whose record is unchanged keeps its
encoded row and parts, and only new or changed items are encoded and their parts computed
(O(W_i² k) each); the rest is a copy of the arrays, O(A). `UnionViews` keeps the last
VIEWS_KEPT views of one model version, so memory stays within a few copies of the added
items' rows and parts.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from bundle import AddedItems, BundleInputError, EncodedItem, ItemParts
from bundle.id_index import IdIndex
from service.catalog import Catalog
from service.overlay import AddedItem, Overlay

VIEWS_KEPT = 2  # views per model version: the newest overlay's and the one before
NO_POSITIONS = np.zeros(0, np.int64)


class UnionCatalog:
    """One (model version, overlay version)'s catalog, by union position (the module doc)."""

    def __init__(self, catalog: Catalog, added: AddedItems | None, overlay: Overlay,
                 previous: UnionCatalog | None = None):
        self.catalog, self.scorer, self.version = catalog, added, overlay.version
        self.bundle_size = catalog.size
        retired = catalog.index_of(sorted(overlay.retired))
        self.retired = np.unique(retired[retired >= 0])  # bundle positions, sorted
        self.retired_ids = overlay.retired  # every retired id, the bundle's and added ones
        served = self._served(catalog, overlay) if added is not None else []
        self.items: tuple[AddedItem, ...] = tuple(served)
        self.ids = np.asarray([item.item_id for item in served], dtype=str)
        self.size = self.bundle_size + len(served)
        self._index = IdIndex(self.ids)
        self.idx, self.val, self.parts = self._rows(previous)
        self._by_value: dict[str, dict[str, list[int]]] = {}

    @staticmethod
    def _served(catalog: Catalog, overlay: Overlay) -> list[AddedItem]:
        """The added items this view serves, in the overlay's order: not retired, not held
        by the bundle."""
        ids = [i for i in overlay.added if i not in overlay.retired]
        held = catalog.index_of(ids) >= 0
        return [overlay.added[i] for i, h in zip(ids, held.tolist()) if not h]

    @property
    def added_count(self) -> int:
        return len(self.items)

    def _rows(self, previous: UnionCatalog | None
              ) -> tuple[np.ndarray, np.ndarray, ItemParts | None]:
        """Encoded rows (A, W_i) and parts of the served items: reused from `previous`
        where an item's record is unchanged, computed for the rest."""
        if self.scorer is None:
            return np.zeros((0, 0), np.int32), np.zeros((0, 0), np.float32), None
        kept = self._kept(previous)
        fresh = [self._encode(self.items[a]) for a in np.flatnonzero(kept < 0).tolist()]
        idx = np.stack([i.idx for i in fresh]) if fresh \
            else np.zeros((0, self.scorer.width), np.int32)
        val = np.stack([i.val for i in fresh]) if fresh \
            else np.zeros((0, self.scorer.width), np.float32)
        parts = self.scorer.parts(fresh)
        reused = kept[kept >= 0]
        if previous is None or previous.parts is None or len(reused) == 0:
            return idx, val, parts
        idx = np.concatenate([previous.idx[reused], idx])
        val = np.concatenate([previous.val[reused], val])
        parts = ItemParts.concat([previous.parts.take(reused), parts])
        # the reused rows came first, then the fresh ones: put them in the overlay's order
        order = np.empty(len(kept), np.int64)
        order[kept >= 0] = np.arange(len(reused))
        order[kept < 0] = len(reused) + np.arange(len(fresh))
        if (order == np.arange(len(order))).all():
            return idx, val, parts
        return idx[order], val[order], parts.take(order)

    def _kept(self, previous: UnionCatalog | None) -> np.ndarray:
        """(A,) int64: each served item's row among `previous`'s added items where its
        record there is the same, else -1 (to encode)."""
        if previous is None or previous.parts is None or not previous.items:
            return np.full(len(self.items), -1, np.int64)
        kept = previous._index.positions(list(self.ids))
        for a, j in enumerate(kept.tolist()):
            if j >= 0 and not _same(previous.items[j], self.items[a]):
                kept[a] = -1
        return kept

    def _encode(self, item: AddedItem) -> EncodedItem:
        """An added item's row for this model version; fields it cannot take are dropped."""
        assert self.scorer is not None
        features = dict(item.features)
        while True:
            try:
                return self.scorer.encode(features, item.item_id)
            except BundleInputError as err:
                if err.field not in features:
                    raise
                del features[err.field]

    def position_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """(len(item_ids),) int64: each id's union position, -1 where the view does not
        serve it (unknown, or retired)."""
        found = self.catalog.index_of(item_ids)
        if len(self.retired):
            found[np.isin(found, self.retired)] = -1
        missing = np.flatnonzero(found < 0)
        if len(missing) and len(self.items):
            added = self._index.positions([item_ids[m] for m in missing.tolist()])
            found[missing] = np.where(added >= 0, self.bundle_size + added, -1)
        return found

    def positions(self, item_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Union positions of the ids served, in order, and the ids it does not serve (the
        catalog lacks them, or they are retired)."""
        found = self.position_of(item_ids)
        unknown = [i for i, p in zip(item_ids, found.tolist()) if p < 0]
        return found[found >= 0], unknown

    def seen(self, trained: np.ndarray, recorded: frozenset[str]) -> np.ndarray:
        """A user's seen items as union positions: its training items (bundle
        positions) and the ids recorded since that the view serves."""
        if not recorded:
            return trained.astype(np.int64)
        known, _ = self.positions(sorted(recorded))
        return np.union1d(trained, known).astype(np.int64)

    def available(self) -> np.ndarray:
        """(size,) bool: every item the view serves (the retired ones left out)."""
        mask = np.ones(self.size, bool)
        mask[self.retired] = False
        return mask

    def items_with(self, field: str, values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """(size,) bool of the items holding one of `values` in item field `field`, and the
        values neither the model's vocabulary nor any added item holds. A bundle item is
        matched through its row; an added item through its values as given (a value the
        model lacks is still the item's: a filter on a new brand finds the items of that
        brand). Raises BundleInputError for a field that is not an item field."""
        held, unknown = self.catalog.items_with(field, tuple(values))
        if not self.items:
            return held, unknown
        mask = np.zeros(self.size, bool)
        mask[:self.bundle_size] = held
        index = self._values_of(field)
        for value in values:
            mask[self.bundle_size + np.asarray(index.get(value, ()), np.int64)] = True
        return mask, [v for v in unknown if v not in index]

    def _values_of(self, field: str) -> dict[str, list[int]]:
        """value -> the added items holding it in `field`, built once per field and view."""
        if field not in self._by_value:
            index: dict[str, list[int]] = {}
            id_field = self.scorer.id_field if self.scorer is not None else None
            for a, item in enumerate(self.items):
                raw = [item.item_id] if field == id_field else item.features.get(field, ())
                for value in [raw] if isinstance(raw, str) else raw:
                    index.setdefault(str(value), []).append(a)
            self._by_value[field] = index
        return self._by_value[field]

    def rows(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The feature rows (C, W_i) of union positions: indices int32 and values float32,
        the bundle's as exported, the added items' as encoded for this model version."""
        positions = np.asarray(positions, np.int64)
        idx, val = self.catalog.rows()
        if not len(positions) or positions.max() < self.bundle_size:
            return np.asarray(idx[positions]), np.asarray(val[positions])
        added = positions >= self.bundle_size
        out_idx = np.zeros((len(positions), idx.shape[1]), np.int32)
        out_val = np.zeros((len(positions), idx.shape[1]), np.float32)
        out_idx[~added], out_val[~added] = idx[positions[~added]], val[positions[~added]]
        rows = positions[added] - self.bundle_size
        out_idx[added], out_val[added] = self.idx[rows], self.val[rows]
        return out_idx, out_val

    def added_scores(self, state: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """One user's state (D,) -> the scores (A,) of the added items `rows` (indices among
        the added items; all of them if None), float32."""
        if self.parts is None or self.scorer is None:
            return np.zeros(0, np.float32)
        parts = self.parts if rows is None else self.parts.take(rows)
        return self.scorer.score(state[None], parts)[0]

    def item_id(self, position: int) -> str:
        if position < self.bundle_size:
            return str(self.catalog.ids[position])
        return self.items[position - self.bundle_size].item_id

    def display(self, position: int, every: bool = False) -> dict[str, str]:
        """What an answer shows of an item beside its id: its title, or with `every` each
        display attribute (Catalog.display); an added item's as its record gives them."""
        if position < self.bundle_size:
            return self.catalog.display(position, every)
        shown = self.items[position - self.bundle_size].display
        return {name: str(value) for name, value in shown.items() if every or name == "title"}


def _same(before: AddedItem, after: AddedItem) -> bool:
    """Whether two records of an item encode alike (their display does not matter)."""
    return before is after or (before.item_id == after.item_id
                                and dict(before.features) == dict(after.features))


class UnionViews:
    """One model version's union catalogs, by overlay (epoch and version): the last
    VIEWS_KEPT built."""

    def __init__(self, catalog: Catalog, added: AddedItems | None):
        self.catalog, self.added = catalog, added
        self._views: OrderedDict[tuple[str, int], UnionCatalog] = OrderedDict()
        self._lock: asyncio.Lock | None = None

    async def of(self, overlay: Overlay) -> UnionCatalog:
        """The view of `overlay`: cached, or built (in a worker thread, once however many
        requests ask at the same time) from the newest view built before it."""
        view = self._views.get(overlay.key)
        if view is not None:
            return view
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            view = self._views.get(overlay.key)
            if view is None:
                latest = next(reversed(self._views.values()), None)
                view = await asyncio.to_thread(UnionCatalog, self.catalog, self.added,
                                               overlay, latest)
                self._views[overlay.key] = view
                while len(self._views) > VIEWS_KEPT:
                    self._views.popitem(last=False)
        return view
