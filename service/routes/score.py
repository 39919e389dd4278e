"""POST /score: scores of given items for a user."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import Response

from service import union_top
from service.access import needs
from service.deps import Model, ScoreBody, UnionDep, UsersDep, admitted
from service.error_responses import INVALID, MODEL_OR_STORE, NO_KEY, NO_USER_OR_ITEMS, TOO_LARGE
from service.errors import UnknownItems
from service.keys import Scope
from service.routes.common import answer, scored_items, who
from service.schemas import ScoreAnswer

router = APIRouter(tags=["scoring"], responses=NO_KEY | INVALID | MODEL_OR_STORE,
                   dependencies=[needs(Scope.READ), Depends(admitted, scope="function")])


@router.post("/score", response_model=ScoreAnswer, responses=NO_USER_OR_ITEMS | TOO_LARGE)
async def score(body: ScoreBody, model: Model, catalog: UnionDep, users: UsersDep) -> Response:
    """Scores of the given items (the bundle's or added ones) for a user, in request order;
    a retired item is as unknown as one never added."""
    positions, unknown = catalog.positions(body.item_ids)
    if unknown:
        raise UnknownItems(unknown)
    user = await who(users, model, body, None, body.explain)
    scores = union_top.score(model, catalog, user.state, positions)
    return answer(ScoreAnswer(model_version=model.version, user_id=body.user_id,
                              user_source=user.source,
                              scores=scored_items(catalog, positions, scores, body.details,
                                                  (model, user) if body.explain else None),
                              ignored=user.ignored), user.degraded)
