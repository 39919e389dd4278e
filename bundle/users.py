"""A bundle's known users: find one by id, and read its row, its training items and profile."""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import numpy as np

from bundle import format as fmt
from bundle.fields import Fields
from bundle.id_index import IdIndex


class KnownUsers:
    """The users the model was trained on, by catalog-independent position 0..U-1."""

    def __init__(self, array: Callable[[str], np.ndarray], fields: Fields,
                 columns: tuple[str, ...]):
        self._array, self._fields, self._columns = array, fields, columns

    @property
    def ids(self) -> np.ndarray:
        """(U,) str: the id of each known user's position."""
        return self._array(fmt.USER_IDS)

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def _index(self) -> IdIndex:
        return IdIndex(self.ids)

    def position(self, user_id: str) -> int | None:
        """The user's position, or None for a user the model was not trained on."""
        position = int(self._index.positions([user_id])[0])
        return position if position >= 0 else None

    def row(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """A known user's feature row: idx (W_u,) int32, val (W_u,) float32."""
        return (np.asarray(self._array(fmt.USER_IDX)[position]),
                np.asarray(self._array(fmt.USER_VAL)[position]))

    def seen_items(self, position: int) -> np.ndarray:
        """Catalog positions of the items a known user interacted with in training."""
        offsets = self._array(fmt.SEEN_OFFSETS)
        return np.asarray(self._array(fmt.SEEN_ITEMS)[offsets[position]:offsets[position + 1]])

    def profile(self, position: int) -> dict[str, str | list[str]]:
        """A known user's raw field values, decoded from its row."""
        return self._fields.decode(*self.row(position), self._columns)
