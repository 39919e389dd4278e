"""GET /items/{item_id}, GET /model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.access import needs
from service.deps import Model
from service.errors import UnknownItems
from service.keys import Scope
from service.problems import INVALID, NO_ITEM, NO_KEY, NO_MODEL_ONLY
from service.routes.common import PathId
from service.schemas import ItemAnswer, ModelAnswer

router = APIRouter(tags=["catalog"], dependencies=[needs(Scope.READ)],
                   responses=NO_KEY | INVALID | NO_MODEL_ONLY)
MAX_VALUES_LISTED = 1000  # per field in GET /model: an id field can have millions


@router.get("/items/{item_id}", response_model=ItemAnswer, responses=NO_ITEM)
async def get_item(item_id: PathId, model: Model) -> ItemAnswer:
    """An item's features and display attributes (title, ...)."""
    positions, unknown = model.item_positions([item_id])
    if unknown:
        raise UnknownItems(unknown)
    return ItemAnswer(model_version=model.version, **model.item_details(int(positions[0])))


@router.get("/model", response_model=ModelAnswer)
async def get_model(model: Model,
                       values: Annotated[int, Query(ge=0, le=MAX_VALUES_LISTED)] = 50
                       ) -> ModelAnswer:
    """What is being served: name, version, kind, catalog size, the user fields a profile
    can have, every field with up to `values` of its known values, and the run's metrics."""
    info = model.describe(values)
    return ModelAnswer(model_version=info.pop("version"), **info)
