"""What routes receive, as Annotated dependencies: one line per dependency in a route, and
tests can override any of them.

`Model` is read once per request, at its start: a reload during the request does not
change the version that answers it. Every dependency is `async def`: FastAPI runs a plain
`def` dependency in a worker thread, a hop per dependency per request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from service.gate import Gate
from service.ranking import Ranker
from service.reload import ModelHost
from service.served_model import ServedModel
from service.settings import Settings
from service.stores import GuardedStore
from service.user_state import Users


async def _model_host(request: Request) -> ModelHost:
    return request.app.state.model_host


async def _model(request: Request) -> ServedModel:
    return request.app.state.model_host.require()


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
Model = Annotated[ServedModel, Depends(_model)]
UsersDep = Annotated[Users, Depends(_users)]
RankerDep = Annotated[Ranker, Depends(_ranker)]
Store = Annotated[GuardedStore, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
