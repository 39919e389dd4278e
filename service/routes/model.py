"""GET /model: what is being served."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from service.access import needs
from service.deps import Model
from service.error_responses import INVALID, NO_KEY, NO_MODEL_ONLY
from service.keys import Scope
from service.schemas import ModelAnswer

MAX_VALUES_LISTED = 1000  # per field: an id field can have millions

router = APIRouter(tags=["catalog"], dependencies=[needs(Scope.READ)],
                   responses=NO_KEY | INVALID | NO_MODEL_ONLY)


@router.get("/model", response_model=ModelAnswer)
async def get_model(model: Model,
                    values: Annotated[int, Query(ge=0, le=MAX_VALUES_LISTED)] = 50
                    ) -> ModelAnswer:
    """What is being served: name, version, kind, catalog size, the user fields a profile
    can have, every field with up to `values` of its known values, and the run's metrics."""
    info = model.description.of(values)
    return ModelAnswer(model_version=info.pop("version"), **info)
