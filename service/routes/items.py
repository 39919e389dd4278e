"""GET /items/{item_id}: an item of the catalog."""

from __future__ import annotations

from fastapi import APIRouter

from service.access import needs
from service.deps import Model
from service.error_responses import INVALID, NO_ITEM, NO_KEY, NO_MODEL_ONLY
from service.errors import UnknownItems
from service.keys import Scope
from service.routes.common import PathId
from service.schemas import ItemAnswer

router = APIRouter(tags=["catalog"], dependencies=[needs(Scope.READ)],
                   responses=NO_KEY | INVALID | NO_MODEL_ONLY)


@router.get("/items/{item_id}", response_model=ItemAnswer, responses=NO_ITEM)
async def get_item(item_id: PathId, model: Model) -> ItemAnswer:
    """An item's features and display attributes (title, ...)."""
    positions, unknown = model.catalog.positions([item_id])
    if unknown:
        raise UnknownItems(unknown)
    return ItemAnswer(model_version=model.version, **model.catalog.details(int(positions[0])))
