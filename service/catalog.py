"""The served version's catalog as answers show it: ids to positions, display, filter masks.

Routes, filters and user state meet the bundle's items through these methods only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from bundle import Bundle

FILTER_MASKS = 32  # item-field filter masks kept per version (N bytes each)


class Catalog:
    """One bundle version's items."""

    def __init__(self, bundle: Bundle):
        self._items = bundle.catalog
        self.size = len(self._items)
        # the mapped (N,) str array itself: a list of a million Python strings would be 61 MB
        # in every worker
        self.ids: np.ndarray = self._items.ids
        self.display_names = self._items.display_names
        self._title = ("title",) if "title" in self.display_names else ()
        # per instance, so a version's masks go with it (a cache on the class would keep every
        # version it ever saw alive)
        self._items_with = functools.lru_cache(maxsize=FILTER_MASKS)(self._mask_of)

    def index_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """(len(item_ids),) int64: each id's catalog position, -1 where the bundle lacks it."""
        return self._items.index_of(item_ids)

    def positions(self, item_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Catalog positions of the ids, in order, and the ids the catalog lacks."""
        return self._items.positions(list(item_ids))

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Every item's feature row (N, W_i): indices and values, as the bundle holds them."""
        return self._items.rows()

    def display(self, position: int, every: bool = False) -> dict[str, str]:
        """What an answer shows of an item beside its id: its title where the catalog has
        titles (a list of bare ids tells a person nothing); with `every`, each display
        attribute (details=true)."""
        return self._items.display(position, None if every else self._title)

    def items_with(self, field: str, values: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
        """(N,) bool of the items holding one of `values` in item field `field`, and the
        values it does not know (service/filters.py). The last FILTER_MASKS asked are kept:
        a filter is usually asked again and again, and its mask is a pass over the catalog's
        rows; the caller must not write into the mask."""
        return self._items_with(field, tuple(sorted(set(values))))

    def _mask_of(self, field: str, values: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
        mask, unknown = self._items.items_with(field, values)
        mask.setflags(write=False)
        return mask, unknown

    def details(self, position: int) -> dict[str, Any]:
        """An item's id, feature values and display attributes (GET /items/{id})."""
        return self._items.details(position)
