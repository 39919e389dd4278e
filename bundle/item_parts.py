"""Item parts: what a scorer scores items from, the catalog's as exported or added items'.

Each family scores an item from a few per-item arrays, named in `fmt.ITEM_PARTS`: the linear
family from its constant part and matrix row, NFM from (const, S, Q), the feature-pair family
and the whole models from the item's feature row itself. The catalog's are files of the
bundle; an added item's are computed from its row (`ReferenceScorer.item_parts`), so both go
through the same scoring code.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ItemParts:
    """The parts of A items by name, each (A, ...); row a of each belongs to item a."""

    arrays: Mapping[str, np.ndarray]

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrays)

    def take(self, rows: np.ndarray) -> ItemParts:
        """The parts of items `rows` (a retired item left out, say), in that order."""
        return ItemParts({name: np.asarray(a[rows]) for name, a in self.arrays.items()})

    @staticmethod
    def concat(parts: Sequence[ItemParts]) -> ItemParts:
        """The items of every one of `parts` (at least one), in order."""
        return ItemParts({name: np.concatenate([p[name] for p in parts])
                          for name in parts[0].arrays})
