"""What routes receive, as Annotated dependencies: one line per dependency in a route.

Tests can override any of them.

`Model` is read once per request, at its start: a reload during the request does not
change the version that answers it. So is the catalog overlay (service/overlay.py), and
`UnionDep` is the model's catalog joined with it (service/union_catalog.py). The bodies
and the `n` whose limits are settings are dependencies too, which hold them to this app's
limits (service/limits.py). Every dependency is `async def`: FastAPI runs a plain `def`
dependency in a worker thread, a hop per dependency per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request

from service import overlay
from service.experiment import Experiment
from service.gate import Gate
from service.limits import Limit
from service.ranking import Ranker
from service.reload import ModelHost
from service.schemas import (
    ImpressionsRequest,
    InteractionsRequest,
    RecommendRequest,
    ScoreRequest,
    SimilarRequest,
)
from service.served_model import ServedModel
from service.settings import Settings
from service.stores import GuardedStore
from service.union_catalog import UnionCatalog
from service.user_state import Users
from service.variant_hosts import VariantHosts


async def _model_host(request: Request) -> ModelHost:
    return request.app.state.model_host


async def _model(request: Request) -> ServedModel:
    return request.app.state.model_host.require()


async def _overlay(request: Request) -> overlay.Overlay:
    """The newest overlay this worker has read: `app.state.overlay.current`, where the
    catalog's store has put its holder there; the empty overlay until it has."""
    holder = getattr(request.app.state, "overlay", None)
    return overlay.EMPTY if holder is None else holder.current


async def _variant_hosts(request: Request) -> VariantHosts:
    return request.app.state.variant_hosts


async def _experiment(request: Request) -> Experiment:
    return request.app.state.experiment


async def _users(request: Request) -> Users:
    return request.app.state.users


async def _ranker(request: Request) -> Ranker:
    return request.app.state.ranker


async def _store(request: Request) -> GuardedStore:
    return request.app.state.store


async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def admitted(request: Request) -> AsyncIterator[None]:
    """At most GMLREC_MAX_ACTIVE requests of a worker past this point at once (routes use it
    with scope="function": a request leaves when its handler returns, not once its answer
    is sent, so the ranker sees a lone request as alone)."""
    gate: Gate = request.app.state.gate
    async with gate.admit():
        yield


ModelHostDep = Annotated[ModelHost, Depends(_model_host)]
VariantHostsDep = Annotated[VariantHosts, Depends(_variant_hosts)]
ExperimentDep = Annotated[Experiment, Depends(_experiment)]
OverlayDep = Annotated[overlay.Overlay, Depends(_overlay)]
Model = Annotated[ServedModel, Depends(_model)]
UsersDep = Annotated[Users, Depends(_users)]
RankerDep = Annotated[Ranker, Depends(_ranker)]
Store = Annotated[GuardedStore, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]


async def _union(request: Request, model: Model) -> UnionCatalog:
    """The request's model's catalog joined with the request's overlay (the same model as
    the route's: FastAPI resolves `Model` once per request)."""
    return await model.union.of(await _overlay(request))


UnionDep = Annotated[UnionCatalog, Depends(_union)]


async def _score_request(body: ScoreRequest, settings: SettingsDep) -> ScoreRequest:
    Limit.MAX_SCORE_ITEMS.hold(settings, len(body.item_ids), ("body", "item_ids"))
    return body


async def _recommend_request(body: RecommendRequest, settings: SettingsDep) -> RecommendRequest:
    Limit.MAX_N.hold(settings, body.n, ("body", "n"))
    return body


async def _similar_request(body: SimilarRequest, settings: SettingsDep) -> SimilarRequest:
    Limit.MAX_N.hold(settings, body.n, ("body", "n"))
    return body


async def _interactions_request(body: InteractionsRequest, settings: SettingsDep
                                ) -> InteractionsRequest:
    Limit.MAX_SCORE_ITEMS.hold(settings, len(body.item_ids), ("body", "item_ids"))
    return body


async def _top_n(settings: SettingsDep,
                 n: Annotated[int, Query(ge=1, json_schema_extra=Limit.MAX_N.mark())] = 10
                 ) -> int:
    Limit.MAX_N.hold(settings, n, ("query", "n"))
    return n


async def _impressions_request(body: ImpressionsRequest, settings: SettingsDep
                               ) -> ImpressionsRequest:
    Limit.MAX_SCORE_ITEMS.hold(settings, len(body.item_ids), ("body", "item_ids"))
    return body


ScoreBody = Annotated[ScoreRequest, Depends(_score_request)]
RecommendBody = Annotated[RecommendRequest, Depends(_recommend_request)]
SimilarBody = Annotated[SimilarRequest, Depends(_similar_request)]
InteractionsBody = Annotated[InteractionsRequest, Depends(_interactions_request)]
ImpressionsBody = Annotated[ImpressionsRequest, Depends(_impressions_request)]
TopN = Annotated[int, Depends(_top_n)]  # the query's `n`
