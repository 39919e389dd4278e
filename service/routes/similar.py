"""GET and POST /items/{item_id}/similar: the items most like one item, under the model.

The exact top n of the request's catalog (service/similar.py says under which measure), with
the filters of POST /recommend on the POST. Readers call it as they call /recommend.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.responses import Response

from service import filters, similar
from service.access import needs
from service.deps import Model, RankerDep, SimilarBody, TopN, UnionDep, admitted
from service.error_responses import (
    INVALID,
    MODEL_OR_STORE,
    NO_KEY,
    NO_OR_RETIRED_ITEM,
    NO_SIMILARITY,
    TOO_LARGE,
)
from service.keys import Scope
from service.ranking import Ranker
from service.routes.common import PathId, answer, scored_items
from service.schemas import SimilarAnswer, as_text
from service.served_model import ServedModel
from service.union_catalog import UnionCatalog

router = APIRouter(tags=["scoring"], responses=NO_KEY | INVALID | MODEL_OR_STORE
                   | NO_OR_RETIRED_ITEM | NO_SIMILARITY,
                   dependencies=[needs(Scope.READ), Depends(admitted, scope="function")])


@router.get("/items/{item_id}/similar", response_model=SimilarAnswer)
async def similar_items(item_id: PathId, model: Model, catalog: UnionDep, ranker: RankerDep,
                        n: TopN, details: bool = False) -> Response:
    """The n items most similar to this one under the served model, most similar first."""
    return await _similar(model, catalog, ranker, item_id, n, details)


@router.post("/items/{item_id}/similar", response_model=SimilarAnswer, responses=TOO_LARGE)
async def similar_items_filtered(item_id: PathId, body: SimilarBody, model: Model,
                                 catalog: UnionDep, ranker: RankerDep) -> Response:
    """The same, among the items that pass the body's filter (as POST /recommend's)."""
    allowed = None
    if body.filter is not None:
        spec = body.filter
        allowed = filters.passing(catalog, as_text(spec.include), as_text(spec.exclude),
                                  spec.item_ids, spec.exclude_item_ids)
    return await _similar(model, catalog, ranker, item_id, body.n, body.details, allowed)


async def _similar(model: ServedModel, catalog: UnionCatalog, ranker: Ranker, item_id: str,
                   n: int, details: bool, allowed: filters.Passing | None = None) -> Response:
    position = similar.position_of(catalog, item_id)
    measure, (positions, scores) = await similar.similar(
        ranker, model, catalog, position, n, None if allowed is None else allowed.mask)
    return answer(SimilarAnswer(model_version=model.version, item_id=item_id, measure=measure,
                                items=scored_items(catalog, positions, scores, details),
                                ignored={} if allowed is None else allowed.ignored))
