"""GET /items/{item_id}, GET /model."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import Model
from service.errors import UnknownItems
from service.routes.common import NOT_FOUND, PathId
from service.schemas import ItemAnswer, ModelAnswer

router = APIRouter(tags=["catalog"])


@router.get("/items/{item_id}", response_model=ItemAnswer, responses=NOT_FOUND)
async def item(item_id: PathId, model: Model) -> ItemAnswer:
    """An item's features and display attributes (title, ...)."""
    positions, unknown = model.item_positions([item_id])
    if unknown:
        raise UnknownItems(unknown)
    return ItemAnswer(model_version=model.version, **model.item_details(int(positions[0])))


@router.get("/model", response_model=ModelAnswer)
async def served_model(model: Model) -> ModelAnswer:
    """What is being served: name, version, kind, catalog size, the user fields a profile
    can have, and the run's metrics."""
    info = model.describe()
    return ModelAnswer(model_version=info.pop("version"), **info)
