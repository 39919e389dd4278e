"""What routes receive, as Annotated dependencies: one line per dependency in a route, and
tests can override any of them.

`Model` is read once per request, at its start: a reload during the request does not
change the version that answers it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request

from service.gate import Gate
from service.model_host import ModelHost, ServedModel
from service.ranking import Ranker
from service.settings import Settings
from service.stores import GuardedStore
from service.users import Users


def _host(request: Request) -> ModelHost:
    return request.app.state.host


def _model(request: Request) -> ServedModel:
    return request.app.state.host.require()


def _users(request: Request) -> Users:
    return request.app.state.users


def _ranker(request: Request) -> Ranker:
    return request.app.state.ranker


def _store(request: Request) -> GuardedStore:
    return request.app.state.store


def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def admitted(request: Request) -> AsyncIterator[None]:
    """At most GMLREC_MAX_ACTIVE requests of a worker past this point at once (routes use it
    with scope="function": a request leaves when its handler returns, not once its answer
    is sent, so the ranker sees a lone request as alone)."""
    gate: Gate = request.app.state.gate
    async with gate.admit():
        yield


Host = Annotated[ModelHost, Depends(_host)]
Model = Annotated[ServedModel, Depends(_model)]
UsersDep = Annotated[Users, Depends(_users)]
RankerDep = Annotated[Ranker, Depends(_ranker)]
Store = Annotated[GuardedStore, Depends(_store)]
SettingsDep = Annotated[Settings, Depends(_settings)]
