"""A bundle's catalog: find items by id, show them, and select them by an item field's values.

A catalog position (0..N-1) is what the scorers rank and return; this maps it to and from item
ids and to what a person sees of an item (its display attributes and raw feature values).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import numpy as np

from bundle import format as fmt
from bundle.errors import BundleInputError
from bundle.fields import Fields
from bundle.id_index import IdIndex


class Catalog:
    """The bundle's items, by catalog position."""

    def __init__(self, array: Callable[[str], np.ndarray], fields: Fields,
                 columns: tuple[str, ...], display_names: Sequence[str]):
        self._array, self._fields, self._columns = array, fields, columns
        self.display_names = tuple(display_names)  # display attributes (title, ...), in order

    @property
    def ids(self) -> np.ndarray:
        """(N,) str: the id of each catalog position (what top_n's positions map to)."""
        return self._array(fmt.ITEM_IDS)

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def _index(self) -> IdIndex:
        return IdIndex(self.ids)

    def index_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """(len(item_ids),) int64: each id's catalog position, -1 where the catalog lacks it."""
        return self._index.positions(item_ids)

    def positions(self, item_ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """Catalog positions of the known ids, in order, and the ids the catalog lacks."""
        positions = self.index_of(item_ids)
        unknown = [i for i, p in zip(item_ids, positions.tolist()) if p < 0]
        return positions[positions >= 0], unknown

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Every item's feature row: indices (N, W_i) int32 and values (N, W_i) float32."""
        return self._array(fmt.ITEM_IDX), self._array(fmt.ITEM_VAL)

    def display(self, position: int, names: Sequence[str] | None = None) -> dict[str, str]:
        """An item's display attributes: `names` of them, or every one."""
        names = self.display_names if names is None else names
        return {name: str(self._array(fmt.ITEM_ATTRIBUTE.format(name))[position])
                for name in names}

    def details(self, position: int) -> dict[str, Any]:
        """An item's id, raw feature values and display attributes."""
        idx, val = self._array(fmt.ITEM_IDX)[position], self._array(fmt.ITEM_VAL)[position]
        return {"item_id": str(self.ids[position]),
                "features": self._fields.decode(idx, val, self._columns),
                **self.display(position)}

    def items_with(self, name: str, values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """(N,) bool: the catalog items holding any of `values` in item field `name`; and
        the values its vocabulary lacks. Raises BundleInputError for a field that is not an
        item field."""
        field = self._fields.named(name)
        if field is None or field.side != fmt.ITEM_SIDE:
            known = ", ".join(f.name for f in self._fields.on_table_side(fmt.ITEM_SIDE))
            raise BundleInputError(name, f"not an item field (item fields: {known})")
        codes = field.codes()
        features = [field.offset + codes[v] for v in values if v in codes]
        columns = [c for c, col in enumerate(self._columns) if col == name]
        idx = self._array(fmt.ITEM_IDX)[:, columns]
        held = np.isin(idx, features) & (self._array(fmt.ITEM_VAL)[:, columns] != 0)
        return held.any(axis=1), [v for v in values if v not in codes]
