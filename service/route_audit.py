"""The route audit: every route an app serves declares exactly one access policy.

create_app refuses to build an app with a route nobody said who may call, and
tests/service/api/test_access.py holds each declared policy to its scope. Routes FastAPI
and the explorer add that are not APIRoutes are public by design (PUBLIC_PATHS).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from service.access import SCOPE_ATTRIBUTE
from service.keys import Scope

# the schema, the docs and the page's static files hold nothing a key protects
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
                          "/explorer"})


def policies(route: APIRoute) -> list[Scope | None]:
    """The access policies a route declares (its router's and its own): one is right."""
    return [getattr(d.dependency, SCOPE_ATTRIBUTE) for d in route.dependencies
            if hasattr(d.dependency, SCOPE_ATTRIBUTE)]


def undeclared(app: FastAPI, routers: Sequence[APIRouter]) -> list[str]:
    """Every route of the app without exactly one policy, as "METHODS path": the app's own
    routes and those of the routers it included (FastAPI may keep an included router whole
    in app.routes rather than its routes, so those are walked from the routers)."""
    wrong, included = [], 0
    for route in [*(r for router in routers for r in router.routes), *app.routes]:
        if isinstance(route, APIRoute):
            if len(policies(route)) != 1:
                wrong.append(f"{','.join(sorted(route.methods or ()))} {route.path}")
        elif isinstance(route, Route | Mount):
            if route.path not in PUBLIC_PATHS:
                wrong.append(f"{route.path} (not an API route, not public by design)")
        else:
            included += 1
    if included > len(routers):
        wrong.append(f"{included - len(routers)} route(s) of a router this check was not given")
    return list(dict.fromkeys(wrong))  # older FastAPI copies a router's routes into the app
