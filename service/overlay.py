"""The catalog overlay: the items added through the API and the items retired, as one value.

The bundle's catalog is fixed at export; the overlay is what clients changed since, kept in
the store (service/stores) so that every worker and replica serves the same. A worker holds
the newest overlay it has read as one immutable `Overlay`: a request takes it once, at its
start, and finishes on it, as it does with the model version.

An id may be both added and retired (a retired added item keeps its record, so a later PUT
brings it back with new features). Where the served bundle holds an id, the bundle's vectors
score it and an added record of the same id is not used, so a refit that learned the item wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

FeatureValue = str | list[str]


@dataclass(frozen=True)
class AddedItem:
    """One item as a client put it: item-side feature values and display attributes."""

    item_id: str
    features: Mapping[str, FeatureValue]  # raw values, as PUT /items/{item_id} sent them
    display: Mapping[str, str] = field(default_factory=dict)  # title and such, shown as is


@dataclass(frozen=True)
class Overlay:
    """Every change clients made to the catalog, as of `version`.

    `version` grows with every acknowledged change in the store, within one `epoch`: a store
    emptied under the service (Redis flushed) starts a new epoch and counts again from 0. Two
    overlays of one store with the same `key` hold the same items. `added` keeps the order in
    which ids were first added: an added item's place in that order breaks score ties, after
    every item of the bundle.
    """

    version: int = 0
    added: Mapping[str, AddedItem] = field(default_factory=lambda: MappingProxyType({}))
    retired: frozenset[str] = frozenset()
    epoch: str = ""

    @property
    def key(self) -> tuple[str, int]:
        """What identifies these contents: the epoch and the version within it."""
        return self.epoch, self.version

    def is_retired(self, item_id: str) -> bool:
        return item_id in self.retired


EMPTY = Overlay()
