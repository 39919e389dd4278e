"""POST /score, GET /recommend/{user_id}, POST /recommend."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from service.deps import Model, RankerDep, UsersDep, admitted
from service.errors import UnknownItems
from service.routes.common import LOOKUP_ERRORS, PathId, answer, scored_items
from service.schemas import (
    MAX_N,
    RecommendAnswer,
    RecommendRequest,
    ScoreAnswer,
    ScoreRequest,
    UserFeatures,
    as_text,
)
from service.users import ResolvedUser, Users

router = APIRouter(tags=["scoring"], dependencies=[Depends(admitted, scope="function")])


async def _who(users: Users, model: Model, body: UserFeatures, seen: bool) -> ResolvedUser:
    user, context = as_text(body.user), as_text(body.context)
    if body.user_id is None:
        return users.anonymous(model, user or {}, context)
    return await users.resolve(model, body.user_id, user, context, seen)


@router.post("/score", response_model=ScoreAnswer, responses=LOOKUP_ERRORS)
async def score(body: ScoreRequest, model: Model, users: UsersDep) -> Response:
    """Scores of the given items for a user, in request order."""
    positions, unknown = model.item_positions(body.item_ids)
    if unknown:
        raise UnknownItems(unknown)
    who = await _who(users, model, body, seen=False)
    scores = model.score(who.state, positions)
    return answer(ScoreAnswer(model_version=model.version, user_id=body.user_id,
                              scores=scored_items(model, positions, scores, body.details),
                              ignored=who.ignored), who.degraded)


@router.get("/recommend/{user_id}", response_model=RecommendAnswer,
            responses=LOOKUP_ERRORS)
async def recommend_known(user_id: PathId, model: Model, users: UsersDep, ranker: RankerDep,
                          n: Annotated[int, Query(ge=1, le=MAX_N)] = 10,
                          exclude_seen: bool = True, details: bool = False
                          ) -> Response:
    """The n best items of the whole catalog for a known user, best first."""
    who = await users.resolve(model, user_id, seen=exclude_seen)
    return await _recommend(model, ranker, user_id, who, n, details)


@router.post("/recommend", response_model=RecommendAnswer, responses=LOOKUP_ERRORS)
async def recommend(body: RecommendRequest, model: Model, users: UsersDep, ranker: RankerDep
                    ) -> Response:
    """The same for a user given by features (a user the service has never seen), or for a
    known user with this request's context or overrides."""
    who = await _who(users, model, body, seen=body.exclude_seen)
    return await _recommend(model, ranker, body.user_id, who, body.n, body.details)


async def _recommend(model: Model, ranker: RankerDep, user_id: str | None, who: ResolvedUser,
                     n: int, details: bool) -> Response:
    positions, scores = await ranker.top(model, who.state, n, who.seen)
    return answer(RecommendAnswer(model_version=model.version, user_id=user_id,
                                  items=scored_items(model, positions, scores, details),
                                  ignored=who.ignored), who.degraded)
