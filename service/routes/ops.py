"""GET /health, GET /ready, GET /metrics, POST /admin/reload, GET /admin/experiment."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.responses import Response

from service import metrics
from service.access import OPEN, needs
from service.deps import ExperimentDep, ModelHostDep, SettingsDep, Store, VariantHostsDep
from service.error_responses import NO_KEY, REFUSED, STORE_ONLY, WEAK_KEY
from service.experiment_report import report
from service.keys import Scope
from service.safe_json import SafeJSONResponse
from service.schemas import ExperimentAnswer, HealthAnswer, ReadyAnswer, ReloadAnswer
from service.stores import StoreUnavailable

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=HealthAnswer, dependencies=[OPEN])
async def health() -> HealthAnswer:
    """The process answers. Touches neither the store nor the model."""
    return HealthAnswer(status="ok")


@router.get("/ready", response_model=ReadyAnswer, dependencies=[OPEN],
            responses={503: {"model": ReadyAnswer, "description": "no model loaded"}})
async def ready(model_host: ModelHostDep, store: Store, settings: SettingsDep) -> Response:
    """200 `ready`: a model is loaded and the store answers; 200 `degraded`: a model is
    loaded but the store does not answer (requests are served from the bundle alone);
    503 `not_ready`: no model."""
    kind = "redis" if settings.redis_url else "memory"
    model = model_host.current
    if model is None:
        body = ReadyAnswer(status="not_ready", model_version=None, store=kind,
                           detail=model_host.last_error or "loading")
        return SafeJSONResponse(body.model_dump(), 503)
    try:
        await asyncio.wait_for(store.ping(), settings.redis_timeout_s * 2)
        body = ReadyAnswer(status="ready", model_version=model.version, store=kind)
    except (StoreUnavailable, TimeoutError) as err:
        body = ReadyAnswer(status="degraded", model_version=model.version, store=kind,
                           detail=str(err) or "store timed out")
    return SafeJSONResponse(body.model_dump())


@router.get("/metrics", response_class=Response, dependencies=[needs(Scope.ADMIN)],
            responses=NO_KEY | WEAK_KEY)
async def metrics_text() -> Response:
    """Prometheus text format, summed over workers."""
    data, content_type = metrics.exposition()
    return Response(data, media_type=content_type)


@router.post("/admin/reload", response_model=ReloadAnswer, dependencies=[needs(Scope.ADMIN)],
             responses=NO_KEY | WEAK_KEY | REFUSED)
async def reload(model_host: ModelHostDep, hosts: VariantHostsDep, store: Store
                 ) -> ReloadAnswer:
    """Load the newest bundle now in the worker that takes the call, and tell every other
    worker and replica sharing the store, which follow within a second (ModelHost.follow);
    `others_told` is false if the store could not be reached to tell them. The answer is the
    control variant's; every other variant reloads its own model too (a refusal there is
    logged, and its old version serves on)."""
    await hosts.reload_others()  # first: a refused control (a 409) stops no other variant
    result = await model_host.reload()
    try:
        await store.reload_generation(bump=True)
        told = True
    except StoreUnavailable:
        told = False
    return ReloadAnswer(model_version=result.current, previous_version=result.previous,
                        changed=result.changed, others_told=told)


@router.get("/admin/experiment", response_model=ExperimentAnswer,
            dependencies=[needs(Scope.ADMIN)], responses=NO_KEY | WEAK_KEY | STORE_ONLY)
async def experiment_report(experiment: ExperimentDep, hosts: VariantHostsDep
                            ) -> ExperimentAnswer:
    """Each variant's users, answers, impressions and hits, its hit rate with a 95% interval,
    and a two-proportion test of it against the control's (docs/operations.md, Running an
    experiment). The counts are the store's: every worker and replica adds to them."""
    return report(experiment.name, experiment.split, experiment.window_s,
                  await experiment.counts(), hosts.serving)
