"""POST /score, GET /recommend/{user_id}, POST /recommend.

The routes are made per app (`router(settings)`): their bodies and `n` carry the app's
GMLREC_MAX_N and GMLREC_MAX_SCORE_ITEMS, in validation and in the published schema alike.
(No `from __future__ import annotations` here: FastAPI reads the body types of routes
defined inside the factory from their evaluated annotations.)
"""

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from service import filters
from service.access import needs
from service.deps import Model, RankerDep, UsersDep, admitted
from service.errors import UnknownItems
from service.keys import Scope
from service.problems import (
    INVALID,
    MODEL_OR_STORE,
    NO_KEY,
    NO_USER,
    NO_USER_OR_ITEMS,
    TOO_LARGE,
)
from service.routes.common import PathId, answer, scored_items
from service.schemas import RecommendAnswer, ScoreAnswer, UserFeatures, as_text, limited_bodies
from service.settings import Settings
from service.user_state import ResolvedUser, Users


def router(settings: Settings) -> APIRouter:
    """The scoring routes, held to the limits of `settings`."""
    bodies = limited_bodies(settings.max_n, settings.max_score_items)
    score_request, recommend_request = bodies.score, bodies.recommend
    routes = APIRouter(tags=["scoring"], responses=NO_KEY | INVALID | MODEL_OR_STORE,
                       dependencies=[needs(Scope.READ), Depends(admitted, scope="function")])

    @routes.post("/score", response_model=ScoreAnswer,
                 responses=NO_USER_OR_ITEMS | TOO_LARGE)
    async def score(body: score_request, model: Model, users: UsersDep) -> Response:
        """Scores of the given items for a user, in request order."""
        positions, unknown = model.item_positions(body.item_ids)
        if unknown:
            raise UnknownItems(unknown)
        who = await _who(users, model, body, seen=False)
        scores = model.score(who.state, positions)
        return answer(ScoreAnswer(model_version=model.version, user_id=body.user_id,
                                  scores=scored_items(model, positions, scores, body.details),
                                  ignored=who.ignored), who.degraded)

    @routes.get("/recommend/{user_id}", response_model=RecommendAnswer, responses=NO_USER)
    async def recommend_for_user(user_id: PathId, model: Model, users: UsersDep,
                              ranker: RankerDep,
                              n: Annotated[int, Query(ge=1, le=settings.max_n)] = 10,
                              exclude_seen: bool = True, details: bool = False) -> Response:
        """The n best items of the whole catalog for a known user, best first."""
        who = await users.resolve(model, user_id, seen=exclude_seen)
        return await _recommend(model, ranker, user_id, who, n, details)

    @routes.post("/recommend", response_model=RecommendAnswer,
                 responses=NO_USER | TOO_LARGE)
    async def recommend(body: recommend_request, model: Model, users: UsersDep,
                        ranker: RankerDep) -> Response:
        """The same for a user given by features (a user the service has never seen), or for
        a known user with this request's context or overrides."""
        who = await _who(users, model, body, seen=body.exclude_seen)
        allowed = None
        if body.filter is not None:
            spec = body.filter
            allowed = filters.passing(model, as_text(spec.include), as_text(spec.exclude),
                                      spec.item_ids, spec.exclude_item_ids)
        return await _recommend(model, ranker, body.user_id, who, body.n, body.details,
                                allowed)

    return routes


async def _who(users: Users, model: Model, body: UserFeatures, seen: bool) -> ResolvedUser:
    user, context = as_text(body.user), as_text(body.context)
    if body.user_id is None:
        return users.anonymous(model, user or {}, context)
    return await users.resolve(model, body.user_id, user, context, seen)


async def _recommend(model: Model, ranker: RankerDep, user_id: str | None, who: ResolvedUser,
                     n: int, details: bool, allowed: filters.Passing | None = None
                     ) -> Response:
    ignored = who.ignored
    if allowed is None:
        positions, scores = await ranker.top(model, who.state, n, who.seen)
    else:
        mask = allowed.mask.copy()
        mask[who.seen] = False
        ignored = {**ignored, **allowed.ignored}
        if mask.sum() <= filters.DIRECT_SHARE * model.n_items:  # score just those
            positions, scores = filters.best_of(model, who.state, np.flatnonzero(mask), n)
        else:
            positions, scores = await ranker.top(model, who.state, n, np.flatnonzero(~mask))
    return answer(RecommendAnswer(model_version=model.version, user_id=user_id,
                                  items=scored_items(model, positions, scores, details),
                                  ignored=ignored), who.degraded)
