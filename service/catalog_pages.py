"""GET /items' pages: the served bundle's items, then the added ones, retired ones left out.

A cursor is where the next page starts: `b<n>`, the bundle's n-th item, or `a<n>`, the n-th
id in the overlay's order of first adds. Clients pass it back as they got it (docs/contract.md
calls it opaque); its pattern is published, so any cursor the schema admits is one this
module reads (a cursor past the end is an empty last page). An added id the bundle also holds
is listed once, with the bundle's items. A page may hold fewer than `limit` items, and the
last one may be empty: pages end where the catalog does, not where items remain.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from service.catalog import Catalog
from service.overlay import Overlay
from service.schemas import ListedItem

CURSOR = r"^[ab][0-9]{1,18}$"  # the published pattern of a cursor
CHUNK = 1_000  # ids looked up at once


def page(catalog: Catalog, overlay: Overlay, cursor: str | None, limit: int
         ) -> tuple[list[ListedItem], str | None]:
    """Up to `limit` items from `cursor` (None: the first), and the next page's cursor (None
    after the last)."""
    items: list[ListedItem] = []
    for after, item in _entries(catalog, overlay, cursor or "b0"):
        if item is not None:
            items.append(item)
        if len(items) == limit:
            return items, after
    return items, None


def _entries(catalog: Catalog, overlay: Overlay, cursor: str
             ) -> Iterator[tuple[str, ListedItem | None]]:
    """Every catalog entry from `cursor` on: the cursor after it, and the item to list (None
    for one left out)."""
    part, start = cursor[0], int(cursor[1:])
    if part == "b":
        for begin in range(start, catalog.size, CHUNK):
            ids = catalog.ids[begin:begin + CHUNK].tolist()
            for position, item_id in enumerate(ids, begin + 1):
                yield f"b{position}", None if overlay.is_retired(item_id) else \
                    ListedItem(item_id=item_id, source="bundle")
        start = 0
    added = itertools.islice(overlay.added, start, None)
    while chunk := list(itertools.islice(added, CHUNK)):
        _, lacked = catalog.positions(chunk)
        only_added = set(lacked)
        for position, item_id in enumerate(chunk, start + 1):
            yield f"a{position}", ListedItem(item_id=item_id, source="added") \
                if item_id in only_added and not overlay.is_retired(item_id) else None
        start += len(chunk)
