"""GET /users, GET and PUT /users/{user_id}, POST /users/{user_id}/interactions."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from events.record import Stamp
from service.access import needs
from service.deps import InteractionsBody, Model, UnionDep, UsersDep, admitted
from service.error_responses import (
    INVALID,
    MODEL_OR_STORE,
    NO_KEY,
    NO_MODEL_ONLY,
    NO_USER,
    NO_USER_OR_ITEMS,
    NOT_SAVED,
    TOO_LARGE,
    WEAK_KEY,
)
from service.keys import Scope
from service.routes.common import PathId
from service.schemas import (
    MAX_ID,
    InteractionsAnswer,
    ProfileAnswer,
    ProfileRequest,
    UserAnswer,
    UsersAnswer,
    as_text,
)

MAX_LISTED = 1000  # user ids per GET /users

router = APIRouter(prefix="/users", tags=["users"], responses=NO_KEY | WEAK_KEY | INVALID,
                   dependencies=[Depends(admitted, scope="function")])


@router.get("", response_model=UsersAnswer, dependencies=[needs(Scope.ADMIN)],
            responses=NO_MODEL_ONLY)
async def list_users(model: Model, limit: Annotated[int, Query(ge=1, le=MAX_LISTED)] = 20,
                     prefix: Annotated[str, Query(max_length=MAX_ID)] = "") -> UsersAnswer:
    """Some users of the model's training data, to try the API with: the first `limit`,
    or those whose id starts with `prefix`. Users only PUT has created are not listed."""
    return UsersAnswer(model_version=model.version, total=model.training.size,
                       user_ids=model.training.ids(prefix, limit))


@router.get("/{user_id}", response_model=UserAnswer, dependencies=[needs(Scope.WRITE)],
            responses=NO_USER | MODEL_OR_STORE)
async def get_profile(user_id: PathId, model: Model, users: UsersDep) -> UserAnswer:
    """A known user's profile: the one PUT stored, else the training data's."""
    features, source, history = await users.profile(model, user_id)
    return UserAnswer(model_version=model.version, user_id=user_id, features=features,
                      source=source, history=history)


@router.put("/{user_id}", response_model=ProfileAnswer, dependencies=[needs(Scope.WRITE)],
            responses=TOO_LARGE | NOT_SAVED)
async def put_profile(user_id: PathId, body: ProfileRequest, model: Model, users: UsersDep
                      ) -> ProfileAnswer:
    """Create or replace a user's profile; the next request sees it."""
    features = as_text(body.features) or {}
    ignored = await users.put_profile(model, user_id, features)
    return ProfileAnswer(model_version=model.version, user_id=user_id, features=features,
                         ignored=ignored)


@router.post("/{user_id}/interactions", response_model=InteractionsAnswer,
             dependencies=[needs(Scope.WRITE)], responses=NO_USER_OR_ITEMS | TOO_LARGE | NOT_SAVED)
async def record_interactions(user_id: PathId, body: InteractionsBody, model: Model,
                              catalog: UnionDep, users: UsersDep) -> InteractionsAnswer:
    """Record items the user has seen (the bundle's or added ones): recommendations with
    exclude_seen leave them out. The batch goes to the event log, in the same step, with its
    time (`at`, else the server's clock), the served model's version and the
    recommendation id if given (docs/store.md, Events). A time later than the server's clock
    is the server's: the log never holds an event from the future."""
    now = time.time()
    stamp = Stamp(now if body.at is None else min(body.at, now), model.version,
                  body.recommendation_id)
    await users.record(model, catalog, user_id, body.item_ids, stamp)
    return InteractionsAnswer(model_version=model.version, user_id=user_id,
                              recorded=len(set(body.item_ids)))
