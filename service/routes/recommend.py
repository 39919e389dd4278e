"""GET /recommend/{user_id}, POST /recommend: the best items of the whole catalog for a user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from service import filters, similar, union_top
from service.access import needs
from service.deps import Model, RankerDep, RecommendBody, TopN, UnionDep, UsersDep, admitted
from service.error_responses import (
    INVALID,
    MODEL_OR_STORE,
    NO_KEY,
    NO_SIMILARITY,
    NO_USER,
    TOO_LARGE,
)
from service.keys import Scope
from service.routes.common import PathId, answer, scored_items, who
from service.schemas import DIVERSITY, RecommendAnswer, as_text
from service.user_state import ResolvedUser

router = APIRouter(tags=["scoring"], responses=NO_KEY | INVALID | MODEL_OR_STORE,
                   dependencies=[needs(Scope.READ), Depends(admitted, scope="function")])
DiversityQuery = Annotated[float, Query(ge=0, le=1, allow_inf_nan=False,
                                        description=DIVERSITY)]


@router.get("/recommend/{user_id}", response_model=RecommendAnswer,
            responses=NO_USER | NO_SIMILARITY)
async def recommend_for_user(user_id: PathId, model: Model, catalog: UnionDep, users: UsersDep,
                             ranker: RankerDep, n: TopN, exclude_seen: bool = True,
                             details: bool = False, diversity: DiversityQuery = 0.0
                             ) -> Response:
    """The n best items of the whole catalog for a user, best first."""
    user = await users.resolve(model, user_id, seen_in=catalog if exclude_seen else None)
    return await _recommend(model, catalog, ranker, user_id, user, n, details,
                            diversity=diversity)


@router.post("/recommend", response_model=RecommendAnswer,
             responses=NO_USER | TOO_LARGE | NO_SIMILARITY)
async def recommend(body: RecommendBody, model: Model, catalog: UnionDep, users: UsersDep,
                    ranker: RankerDep) -> Response:
    """The same for a user given by features (a user the service has never seen), or for
    a known user with this request's context or overrides."""
    user = await who(users, model, body, catalog if body.exclude_seen else None)
    allowed = None
    if body.filter is not None:
        spec = body.filter
        allowed = filters.passing(catalog, as_text(spec.include), as_text(spec.exclude),
                                  spec.item_ids, spec.exclude_item_ids)
    return await _recommend(model, catalog, ranker, body.user_id, user, body.n, body.details,
                            allowed, body.diversity)


async def _recommend(model: Model, catalog: UnionDep, ranker: RankerDep, user_id: str | None,
                     user: ResolvedUser, n: int, details: bool,
                     allowed: filters.Passing | None = None, diversity: float = 0.0
                     ) -> Response:
    """The exact top n; with a diversity λ > 0, the exact top K re-ranked to n by maximal
    marginal relevance (service/similar.py)."""
    if diversity > 0:
        similar.require(model)  # before ranking: a bundle without the measure is a 409
    pool = similar.pool_size(n) if diversity > 0 else n
    ranked = await union_top.top(ranker, model, catalog, user.state, pool, user.seen,
                                 None if allowed is None else allowed.mask)
    positions, scores = similar.diversified(model, catalog, ranked, n, diversity) \
        if diversity > 0 else ranked
    ignored = user.ignored if allowed is None else {**user.ignored, **allowed.ignored}
    return answer(RecommendAnswer(model_version=model.version, user_id=user_id,
                                  user_source=user.source,
                                  items=scored_items(catalog, positions, scores, details),
                                  ignored=ignored,
                                  intra_list_similarity=similar.ils(model, catalog, positions)),
                  user.degraded)
