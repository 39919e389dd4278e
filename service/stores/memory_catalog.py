"""The in-process store's catalog: the overlay's records, retired ids and change log in memory.

The same semantics as Redis' (service/stores/catalog.py), for one process: each method runs
whole without an await, as Redis runs a script whole. With an event log (events/file_log.py),
each change is appended to it first (item records and retirements), so that an export from
the log's directory knows the added items as one from Redis does.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections import deque

from events.file_log import FileLog
from events.record import item_line, retire_line
from service.stores.base import StoreUnavailable
from service.stores.catalog import (
    CHANGES_PER_READ,
    LOG_CAP,
    CatalogChange,
    CatalogFull,
    CatalogSnapshot,
)


class MemoryCatalog:
    """The CatalogStore interface in process."""

    def __init__(self, log_cap: int = LOG_CAP, events: FileLog | None = None) -> None:
        self.events = events  # the event log: catalog changes go there too (module doc)
        self._epoch = secrets.token_hex(8)
        self._version = 0
        self._records: dict[str, bytes] = {}  # in the order ids were first added
        self._retired: set[str] = set()
        self._log: deque[CatalogChange] = deque(maxlen=log_cap)

    async def put_item(self, item_id: str, record: bytes, max_added: int) -> int:
        if item_id not in self._records and len(self._records) >= max_added:
            raise CatalogFull(item_id)
        if self.events is not None:  # a record is what service/overlay_feed.py writes
            self._append_event(item_line(item_id, json.loads(record)["features"], time.time()))
        self._records[item_id] = record
        self._retired.discard(item_id)
        return self._logged(item_id, record)

    async def retire_item(self, item_id: str, in_bundle: bool) -> int | None:
        if not in_bundle and item_id not in self._records:
            return None
        if item_id in self._retired:
            return self._version
        self._append_event(retire_line(item_id, time.time()))
        self._retired.add(item_id)
        return self._logged(item_id, None)

    async def catalog_snapshot(self) -> CatalogSnapshot:
        return CatalogSnapshot(self._epoch, self._version, tuple(self._records.items()),
                               frozenset(self._retired))

    async def catalog_changes(self, epoch: str, since: int) -> list[CatalogChange] | None:
        if epoch != self._epoch or since > self._version:
            return None
        first = self._log[0].version if self._log else self._version + 1
        if first > since + 1:  # trimmed away
            return None
        start = since + 1 - first
        return list(itertools.islice(self._log, start, start + CHANGES_PER_READ))

    def _append_event(self, line: bytes) -> None:
        """Append to the event log, if one is kept, before the change it records is applied:
        a failed append is StoreUnavailable, and the change is not made."""
        if self.events is None:
            return
        try:
            self.events.append(line)
        except OSError as err:
            raise StoreUnavailable(f"event log: {type(err).__name__}: {err}") from None

    def _logged(self, item_id: str, record: bytes | None) -> int:
        self._version += 1
        self._log.append(CatalogChange(self._version, item_id, record))
        return self._version
