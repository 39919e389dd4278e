"""GET /recommend/{user_id}, POST /recommend: the best items of the whole catalog for a user.

Each user is answered by its variant of the experiment (service/variants.py; one variant,
`default`, when none is configured). Every answer carries a fresh `recommendation_id` and is
recorded for attribution (service/experiment.py). Shadow variants rank the same request after
the answer is built and never change it. `diversity` re-ranks the exact top K by maximal
marginal relevance (service/similar.py); `explain` adds each item's exact terms.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from service import filters, metrics, similar, union_top
from service.access import needs
from service.deps import (
    ExperimentDep,
    OverlayDep,
    RankerDep,
    RecommendBody,
    TopN,
    UsersDep,
    VariantHostsDep,
    admitted,
)
from service.error_responses import (
    INVALID,
    MODEL_OR_STORE,
    NO_KEY,
    NO_SIMILARITY,
    NO_USER,
    TOO_LARGE,
)
from service.experiment import new_recommendation_id
from service.keys import Scope
from service.routes.common import PathId, answer, scored_items, who
from service.schemas import DIVERSITY, EXPLAIN, RecommendAnswer, as_text
from service.served_model import ServedModel
from service.union_catalog import UnionCatalog
from service.user_state import ResolvedUser

router = APIRouter(tags=["scoring"], responses=NO_KEY | INVALID | MODEL_OR_STORE,
                   dependencies=[needs(Scope.READ), Depends(admitted, scope="function")])
DiversityQuery = Annotated[float, Query(ge=0, le=1, allow_inf_nan=False,
                                        description=DIVERSITY)]
ExplainQuery = Annotated[bool, Query(description=EXPLAIN)]


@dataclass(frozen=True)
class Ranked:
    """One model's answer to a request, before it is shown."""

    model: ServedModel
    catalog: UnionCatalog
    user: ResolvedUser
    positions: np.ndarray  # union positions, in the answer's order
    scores: np.ndarray
    ignored: dict[str, list[str]]


Rank = Callable[[ServedModel], Awaitable[Ranked]]


@router.get("/recommend/{user_id}", response_model=RecommendAnswer,
            responses=NO_USER | NO_SIMILARITY)
async def recommend_for_user(user_id: PathId, hosts: VariantHostsDep, overlay: OverlayDep,
                             users: UsersDep, ranker: RankerDep, experiment: ExperimentDep,
                             n: TopN, exclude_seen: bool = True, details: bool = False,
                             diversity: DiversityQuery = 0.0, explain: ExplainQuery = False
                             ) -> Response:
    """The n best items of the whole catalog for a user, best first."""
    async def rank(model: ServedModel) -> Ranked:
        catalog = await model.union.of(overlay)
        user = await users.resolve(model, user_id, seen_in=catalog if exclude_seen else None,
                                   with_row=explain)
        positions, scores = await _top(ranker, model, catalog, user, n, None, diversity)
        return Ranked(model, catalog, user, positions, scores, user.ignored)

    return await _serve(hosts, experiment, user_id, rank, details, explain)


@router.post("/recommend", response_model=RecommendAnswer,
             responses=NO_USER | TOO_LARGE | NO_SIMILARITY)
async def recommend(body: RecommendBody, hosts: VariantHostsDep, overlay: OverlayDep,
                    users: UsersDep, ranker: RankerDep, experiment: ExperimentDep) -> Response:
    """The same for a user given by features (a user the service has never seen), or for
    a known user with this request's context or overrides."""
    async def rank(model: ServedModel) -> Ranked:
        catalog = await model.union.of(overlay)
        user = await who(users, model, body, catalog if body.exclude_seen else None,
                         body.explain)
        allowed, ignored = None, user.ignored
        if body.filter is not None:
            spec = body.filter
            allowed = filters.passing(catalog, as_text(spec.include), as_text(spec.exclude),
                                      spec.item_ids, spec.exclude_item_ids)
            ignored = {**user.ignored, **allowed.ignored}
        positions, scores = await _top(ranker, model, catalog, user, body.n,
                                       None if allowed is None else allowed.mask,
                                       body.diversity)
        return Ranked(model, catalog, user, positions, scores, ignored)

    return await _serve(hosts, experiment, body.user_id, rank, body.details, body.explain)


async def _top(ranker: RankerDep, model: ServedModel, catalog: UnionCatalog,
               user: ResolvedUser, n: int, mask: np.ndarray | None, diversity: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """The exact top n; with a diversity λ > 0, the exact top K re-ranked to n by maximal
    marginal relevance (service/similar.py)."""
    if diversity > 0:
        similar.require(model)  # before ranking: a bundle without the measure is a 409
    pool = similar.pool_size(n) if diversity > 0 else n
    ranked = await union_top.top(ranker, model, catalog, user.state, pool, user.seen, mask)
    if diversity > 0:
        return similar.diversified(model, catalog, ranked, n, diversity)
    return ranked


async def _serve(hosts: VariantHostsDep, experiment: ExperimentDep, user_id: str | None,
                 rank: Rank, details: bool, explain: bool) -> Response:
    """Rank with the user's variant, record the answer, start the shadows, answer."""
    variant = experiment.assign(user_id)
    model = hosts.model(variant)  # taken once: a reload meanwhile does not change it
    started = time.perf_counter()
    ranked = await rank(model)
    metrics.VARIANT_SECONDS.labels(variant.name).observe(time.perf_counter() - started)
    items = scored_items(ranked.catalog, ranked.positions, ranked.scores, details,
                         (model, ranked.user) if explain else None)
    recommendation_id = new_recommendation_id()
    served = [i.item_id for i in items]
    await experiment.answered(user_id, variant, recommendation_id, served)
    experiment.shadow(hosts.serving, lambda shadow: _item_ids(rank, shadow), served)
    return answer(RecommendAnswer(model_version=model.version, user_id=user_id,
                                  user_source=ranked.user.source, items=items,
                                  ignored=ranked.ignored,
                                  intra_list_similarity=similar.ils(model, ranked.catalog,
                                                                    ranked.positions),
                                  recommendation_id=recommendation_id, variant=variant.name),
                  ranked.user.degraded)


async def _item_ids(rank: Rank, model: ServedModel) -> list[str]:
    ranked = await rank(model)
    return [ranked.catalog.item_id(p) for p in ranked.positions.tolist()]
