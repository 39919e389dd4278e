"""The FastAPI app: wiring only. `uvicorn service.app:app` or `python -m service`.

The settings are read and checked when this module is imported (service/settings.py): unsafe
ones stop `uvicorn service.app:app` with one line naming the variable, as they stop
`python -m service`.

Everything heavy happens in the lifespan, i.e. in each worker after it has started: the
store's connection pool, the bundle and its onnxruntime session (so no session is shared
across a fork), the task that watches the models folder, and the one that follows the
catalog overlay in the store (`app.state.overlay.current`, service/overlay_feed.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.routing import APIRoute

from service import error_handlers, logs, metrics, openapi
from service.body_limit import BodyLimit
from service.experiment import Experiment
from service.gate import Gate
from service.loopback import LoopbackOnly
from service.overlay_feed import OverlayFeed
from service.ranking import Ranker
from service.request_context import RequestContext
from service.route_audit import undeclared
from service.routes import explorer, items, model, ops, recommend, score, similar, users
from service.safe_json import SafeJSONResponse
from service.settings import Settings, settings_or_exit
from service.stores import StoreUnavailable, open_store
from service.user_state import Users
from service.variant_hosts import VariantHosts

log = logging.getLogger("service")

DESCRIPTION = """Recommendations from an exported gmlrec model bundle: exact scores over the
whole catalog with the decomposed formula, user states cached in Redis.
Every answer names the `model_version` that computed it."""


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.configure(settings.log_level)
        metrics.forget_dead_workers()
        store = open_store(settings, metrics.STORE_ERRORS.inc)
        app.state.variant_hosts = hosts = VariantHosts(settings)
        model_host = hosts.control  # the one model of a service without variants
        app.state.settings, app.state.store = settings, store
        app.state.model_host = model_host
        app.state.experiment = experiment = Experiment(settings, store)
        app.state.users = Users(store, settings.cache_ttl_s, settings.history_cap,
                                settings.unknown_users == "cold")
        app.state.gate = gate = Gate(settings.max_active)
        app.state.ranker = Ranker(settings.ranking, alone=lambda: gate.present <= 1)
        app.state.overlay = overlay = OverlayFeed(store)
        with contextlib.suppress(StoreUnavailable):  # the feed tries again every poll
            await overlay.refresh()
        await hosts.load()  # a refusal is logged; /ready says not_ready for the control
        hosts.start(store, settings.reload_interval_s)
        feed = asyncio.create_task(overlay.follow(settings.catalog_poll_s))
        served = model_host.current
        log.info("ready", extra={"model": served.key if served else None,
                                 "store": "redis" if settings.redis_url else "memory"})
        try:
            yield
        finally:
            overlay.stop()
            await hosts.stop()
            await feed
            await experiment.drain()
            await store.close()
            app.state.ranker.close()

    app = FastAPI(title="gmlrec", version="1", description=DESCRIPTION, lifespan=lifespan,
                  default_response_class=SafeJSONResponse,
                  generate_unique_id_function=operation_id,
                  redirect_slashes=False)  # /recommend/ is no way to say POST /recommend
    app.state.keys = settings.keys
    openapi.publish(app, settings)
    routers = [score.router, recommend.router, similar.router, users.router, items.router,
               model.router, ops.router, explorer.router]
    for router in routers:
        app.include_router(router)
    explorer.mount_files(app)
    app.state.routers = routers  # what the route-policy check (and its test) walks
    if wrong := undeclared(app, routers):  # a route nobody said who may call: not served
        raise RuntimeError(f"routes without one access policy: {', '.join(wrong)}")
    error_handlers.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    if settings.loopback_only:
        app.add_middleware(LoopbackOnly)  # whatever address a server binds it to
    app.add_middleware(RequestContext)  # added last: outermost, so it times and logs all
    return app


def operation_id(route: APIRoute) -> str:
    """`<tag>-<name>` (scoring-score, users-put_profile, ...), as FastAPI's full-stack
    template names operations, so clients generated from /openapi.json read well."""
    return f"{route.tags[0]}-{route.name}" if route.tags else route.name


app = create_app(settings_or_exit("service.app"))
