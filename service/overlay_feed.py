"""Each worker's newest catalog overlay: read whole from the store once, then followed in its log.

`OverlayFeed.current` is the Overlay (service/overlay.py) a request takes once, at its start.
A worker reads the whole catalog when it starts, then every GMLREC_CATALOG_POLL_S asks the
store for the log's changes after the version it holds (one round trip, nothing when nothing
changed), so every worker and replica serves a change within a second; a worker that fell
further behind than the log keeps, or meets a store emptied since, reads the whole catalog
again. The worker that made a change reads it at once (`refresh`), so its own next request
sees it. While the store is down the last overlay read serves on.

Records are JSON, `{"features": {...}, "display": {...}}`, written by `record` and read back
here; the store keeps them as bytes (service/stores/catalog.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from service import metrics
from service.overlay import EMPTY, AddedItem, FeatureValue, Overlay
from service.stores import CatalogChange, CatalogSnapshot, GuardedStore, StoreUnavailable
from service.stores.catalog import CHANGES_PER_READ

log = logging.getLogger("service.catalog")
FULL_READS = 3  # whole reads a refresh tries while the catalog changes faster than the log keeps


def record(features: Mapping[str, FeatureValue], display: Mapping[str, str]) -> bytes:
    """An added item's record as the store keeps it."""
    return json.dumps({"features": features, "display": display}, ensure_ascii=False,
                      separators=(",", ":")).encode()


def _added(item_id: str, raw: bytes) -> AddedItem | None:
    """The AddedItem of a stored record; None (logged) for one this service did not write."""
    try:
        data = json.loads(raw)
        return AddedItem(item_id, MappingProxyType(dict(data["features"])),
                         MappingProxyType(dict(data["display"])))
    except (ValueError, KeyError, TypeError) as err:
        log.error("catalog record skipped: not one this service writes", extra={
            "item_id": item_id, "problem": f"{type(err).__name__}: {err}"})
        return None


@dataclass
class _Draft:
    """The next overlay, while it is built: a copy of one, and changes applied to it."""

    epoch: str
    version: int
    added: dict[str, AddedItem]
    retired: set[str]

    @staticmethod
    def of(epoch: str, overlay: Overlay) -> _Draft:
        return _Draft(epoch, overlay.version, dict(overlay.added), set(overlay.retired))

    @staticmethod
    def read(snapshot: CatalogSnapshot) -> _Draft:
        added = {item_id: item for item_id, raw in snapshot.added
                 if (item := _added(item_id, raw)) is not None}
        return _Draft(snapshot.epoch, snapshot.version, added, set(snapshot.retired))

    def apply(self, changes: Iterable[CatalogChange]) -> None:
        """Each change in turn: a put (re)places a record, keeping an id's first place, and
        takes the id out of the retired; a retirement adds it to them."""
        for change in changes:
            if change.record is None:
                self.retired.add(change.item_id)
            else:
                item = _added(change.item_id, change.record)
                if item is not None:
                    self.added[change.item_id] = item
                self.retired.discard(change.item_id)
            self.version = change.version

    def overlay(self) -> Overlay:
        return Overlay(self.version, MappingProxyType(self.added), frozenset(self.retired),
                       self.epoch)


class OverlayFeed:
    """Holds this worker's newest overlay and follows the store (see the module doc)."""

    def __init__(self, store: GuardedStore):
        self._store = store
        self._overlay = EMPTY
        self._epoch: str | None = None  # None: the catalog was never read whole
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()

    @property
    def current(self) -> Overlay:
        return self._overlay

    async def refresh(self) -> None:
        """Bring `current` up to the store's catalog: the log's changes since its version,
        or a whole read where they are not all there. StoreUnavailable if the store fails
        (the overlay held serves on)."""
        async with self._lock:
            if self._epoch is not None:
                changes = await self._store.catalog_changes(self._epoch, self._overlay.version)
                if changes == []:
                    return
                if changes is not None:
                    draft = _Draft.of(self._epoch, self._overlay)
                    if await self._replay(draft, changes):
                        self._publish(draft, "changes")
                        return
            for _ in range(FULL_READS):
                draft = _Draft.read(await self._store.catalog_snapshot())
                if await self._replay(draft, await self._store.catalog_changes(
                        draft.epoch, draft.version)):
                    self._publish(draft, "whole")
                    return
            raise StoreUnavailable(f"the catalog changed faster than {FULL_READS} whole reads "
                                   "could follow")

    async def _replay(self, draft: _Draft, changes: list[CatalogChange] | None) -> bool:
        """Apply `changes`, then the log's next ones, to `draft` until none are left; False
        where the log no longer holds them all."""
        while changes is not None:
            draft.apply(changes)
            if len(changes) < CHANGES_PER_READ:
                return True
            changes = await self._store.catalog_changes(draft.epoch, draft.version)
        return False

    def _publish(self, draft: _Draft, read: str) -> None:
        self._epoch, self._overlay = draft.epoch, draft.overlay()
        metrics.CATALOG_READS.labels(read).inc()
        metrics.CATALOG_VERSION.set(draft.version)
        metrics.CATALOG_ITEMS.labels("added").set(len(draft.added))
        metrics.CATALOG_ITEMS.labels("retired").set(len(draft.retired))

    async def follow(self, every_s: float) -> None:
        """`refresh` every `every_s` until `stop` (ended by a flag, not a cancel: see
        ModelHost.follow)."""
        while not self._stopping.is_set():
            with contextlib.suppress(StoreUnavailable):  # counted by the guard; serve on
                await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), every_s)

    def stop(self) -> None:
        self._stopping.set()
