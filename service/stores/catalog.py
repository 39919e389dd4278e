"""The catalog's half of the store: added items' records, retired ids, and the log of changes.

The store knows ids and bytes: a record is the JSON the caller wrote (service/overlay_feed.py
writes and reads it). Every change (an item put, an item retired) is applied together with
an entry in a capped change log, in one atomic step, and takes the next version. A worker
reads the whole catalog once (`catalog_snapshot`), then only the log's entries after the
version it holds (`catalog_changes`); where the log no longer holds them all (it is capped,
or the store was emptied since) it reads the whole catalog again. docs/store.md, Catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

LOG_CAP = 10_000  # change-log entries kept; a worker further behind reads everything again
CHANGES_PER_READ = 1_000  # log entries per catalog_changes call


class CatalogFull(Exception):
    """A put of a new id when the store holds `max_added` added items already."""


@dataclass(frozen=True)
class CatalogChange:
    """One entry of the change log: `item_id` put with `record`, or retired (record None)."""

    version: int
    item_id: str
    record: bytes | None


@dataclass(frozen=True)
class CatalogSnapshot:
    """The whole catalog as of `version` (or later): the records of the ids added by then, in
    the order they were first added, and the retired ids. Replaying the changes after
    `version` over it gives the store's catalog, whatever changed while it was read."""

    epoch: str  # names this store's catalog: a store emptied and written again has another
    version: int
    added: tuple[tuple[str, bytes], ...]
    retired: frozenset[str]


class CatalogStore(Protocol):
    async def put_item(self, item_id: str, record: bytes, max_added: int) -> int:
        """Store an item's record (an id's first put adds it, a later one replaces its
        record and keeps its place), un-retire it, log the change; its version. CatalogFull,
        and nothing written, for a new id beyond `max_added`."""

    async def retire_item(self, item_id: str, in_bundle: bool) -> int | None:
        """Retire an added id, or a bundle's (`in_bundle`), and log it; the version (the one
        held where it was retired already). None, nothing written, for an id neither added
        nor in the bundle."""

    async def catalog_snapshot(self) -> CatalogSnapshot:
        """The whole catalog (see CatalogSnapshot), read in steps a timeout allows."""

    async def catalog_changes(self, epoch: str, since: int) -> list[CatalogChange] | None:
        """The log's next changes after version `since` of `epoch`, oldest first, at most
        CHANGES_PER_READ (none: nothing changed); None if the log no longer holds them all,
        or the catalog is another epoch's: read the snapshot instead."""
