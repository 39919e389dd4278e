"""GET /items, and GET, PUT and DELETE /items/{item_id}: the catalog, as served and as changed.

Reads answer from the served bundle and this worker's overlay (service/overlay_feed.py),
never the store, so they go on while the store is down. PUT and DELETE change the overlay in
the store, answer once it took the change (503, nothing changed, where it did not), and every
worker and replica serves the change within a second; the worker that answered, at once.
A retired item is a 404 to GET /items/{item_id}, whose body says it is retired and where it
came from: for every reader it has left the catalog, until a PUT brings it back.
"""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from bundle import BundleInputError
from service import catalog_pages
from service.access import needs
from service.deps import Model, SettingsDep, Store, admitted
from service.error_responses import (
    INVALID,
    ITEM_NOT_SAVED,
    ITEM_REFUSED,
    NO_ITEM,
    NO_KEY,
    NO_MODEL_ONLY,
    NO_OR_RETIRED_ITEM,
    TOO_LARGE,
    WEAK_KEY,
)
from service.errors import (
    CatalogFull,
    InvalidInput,
    NoAddedItems,
    RetiredItem,
    StoreDown,
    UnknownItems,
)
from service.keys import Scope
from service.overlay_feed import OverlayFeed, record
from service.routes.common import PathId
from service.schemas import (
    ITEM_KEYS,
    ItemAnswer,
    ItemPutAnswer,
    ItemRequest,
    ItemsAnswer,
    Source,
    as_text,
)
from service.served_model import ServedModel
from service.stores import CatalogFull as StoreCatalogFull
from service.stores import StoreUnavailable

MAX_PAGE = 1000  # items per GET /items page

router = APIRouter(tags=["catalog"], responses=NO_KEY | INVALID)


async def _feed(request: Request) -> OverlayFeed:
    return request.app.state.overlay


Feed = Annotated[OverlayFeed, Depends(_feed)]


def _source(model: ServedModel, item_id: str) -> Source:
    """`bundle` where the served bundle holds the id (its vectors score it), else `added`."""
    return "added" if model.catalog.positions([item_id])[1] else "bundle"


@router.get("/items", response_model=ItemsAnswer, dependencies=[needs(Scope.READ)],
            responses=NO_MODEL_ONLY)
async def list_items(model: Model, feed: Feed,
                     cursor: Annotated[str | None, Query(pattern=catalog_pages.CURSOR,
                                                         description="the `next_cursor` of "
                                                                     "the page before")] = None,
                     limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100) -> ItemsAnswer:
    """The catalog, a page at a time: the bundle's items, then the added ones; retired items
    are left out."""
    items, after = catalog_pages.page(model.catalog, feed.current, cursor, limit)
    return ItemsAnswer(model_version=model.version, items=items, next_cursor=after)


@router.get("/items/{item_id}", response_model=ItemAnswer, dependencies=[needs(Scope.READ)],
            responses=NO_OR_RETIRED_ITEM | NO_MODEL_ONLY)
async def get_item(item_id: PathId, model: Model, feed: Feed) -> ItemAnswer:
    """An item's features and display attributes (title, ...), and where it comes from."""
    overlay = feed.current
    positions, unknown = model.catalog.positions([item_id])
    added = None if not unknown else overlay.added.get(item_id)  # the bundle's wins
    if unknown and added is None:
        raise UnknownItems(unknown)
    if overlay.is_retired(item_id):
        raise RetiredItem(item_id, "added" if added else "bundle")
    if added is None:
        return ItemAnswer(model_version=model.version, source="bundle",
                          **model.catalog.details(int(positions[0])))
    return ItemAnswer(model_version=model.version, item_id=item_id,
                      features=dict(added.features), source="added", **added.display)


@router.put("/items/{item_id}", response_model=ItemPutAnswer,
            dependencies=[needs(Scope.CATALOG), Depends(admitted, scope="function")],
            responses=WEAK_KEY | TOO_LARGE | ITEM_REFUSED | ITEM_NOT_SAVED)
async def put_item(item_id: PathId, body: ItemRequest, model: Model, feed: Feed, store: Store,
                   settings: SettingsDep) -> ItemPutAnswer:
    """Add an item, or replace an added one's features and display attributes, or bring a
    retired one back; every replica ranks it within a second. An id the bundle holds is
    scored by the bundle's vectors while it does; its record waits for a bundle without it."""
    if model.added_items is None:
        raise NoAddedItems(model.version)
    reserved = [name for name in body.display if name in ITEM_KEYS]
    if reserved:
        raise InvalidInput(("body", "display", reserved[0]),
                           f"{reserved[0]}: a key of the item's answers, not a display "
                           "attribute", "invalid_field")
    features = as_text(body.features) or {}
    room = model.description.item_fields()
    for name, value in features.items():  # a repeated value too: the schema counts values
        if isinstance(value, list) and len(value) > room.get(name, len(value)):
            raise InvalidInput(("body", "features", name), f"{name}: at most {room[name]} "
                               f"value(s), got {len(value)}", "too_long")
    try:
        encoded = model.added_items.encode(features, item_id)
    except BundleInputError as err:
        raise InvalidInput(("body", "features", err.field), str(err), "invalid_field") from None
    try:
        await store.put_item(item_id, record(features, body.display), settings.catalog_max_added)
    except StoreCatalogFull:
        raise CatalogFull(settings.catalog_max_added) from None
    except StoreUnavailable:
        raise StoreDown(f"item {item_id!r} not saved") from None
    with contextlib.suppress(StoreUnavailable):  # the feed's next poll reads it then
        await feed.refresh()
    return ItemPutAnswer(model_version=model.version, item_id=item_id, features=features,
                         source=_source(model, item_id), ignored=encoded.ignored, **body.display)


@router.delete("/items/{item_id}", status_code=204, response_class=Response,
               dependencies=[needs(Scope.CATALOG), Depends(admitted, scope="function")],
               responses=WEAK_KEY | NO_ITEM | ITEM_NOT_SAVED)
async def retire_item(item_id: PathId, model: Model, feed: Feed, store: Store) -> Response:
    """Retire an item, added or the bundle's: it leaves every answer, on every replica within
    a second, and outlives reloads; a later PUT brings it back. Retiring it again is a 204."""
    try:
        version = await store.retire_item(item_id, _source(model, item_id) == "bundle")
    except StoreUnavailable:
        raise StoreDown(f"item {item_id!r} not retired") from None
    if version is None:
        raise UnknownItems([item_id])
    with contextlib.suppress(StoreUnavailable):
        await feed.refresh()
    return Response(status_code=204)
