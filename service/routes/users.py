"""PUT /users/{user_id}, POST /users/{user_id}/interactions."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.deps import Model, UsersDep, admitted
from service.routes.common import NOT_FOUND, PathId
from service.schemas import (
    InteractionsAnswer,
    InteractionsRequest,
    ProfileAnswer,
    ProfileRequest,
    as_text,
)

router = APIRouter(prefix="/users", tags=["users"],
                   dependencies=[Depends(admitted, scope="function")])
STORE_DOWN = {503: {"description": "the user store is unavailable; nothing was saved"}}


@router.put("/{user_id}", response_model=ProfileAnswer, responses=STORE_DOWN)
async def put_profile(user_id: PathId, body: ProfileRequest, model: Model, users: UsersDep
                      ) -> ProfileAnswer:
    """Create or replace a user's profile; the next request sees it."""
    features = as_text(body.features) or {}
    ignored = await users.put_profile(model, user_id, features)
    return ProfileAnswer(model_version=model.version, user_id=user_id, features=features,
                         ignored=ignored)


@router.post("/{user_id}/interactions", response_model=InteractionsAnswer,
             responses=NOT_FOUND | STORE_DOWN)
async def record_interactions(user_id: PathId, body: InteractionsRequest, model: Model,
                              users: UsersDep) -> InteractionsAnswer:
    """Record items the user has seen: recommendations with exclude_seen leave them out."""
    await users.record(model, user_id, body.item_ids)
    return InteractionsAnswer(model_version=model.version, user_id=user_id,
                              recorded=len(set(body.item_ids)))
