"""Who may call what: each route's access policy, held on every request.

Every route declares its policy where it is defined, `dependencies=[needs(Scope.READ)]` or
`[OPEN]`; service/route_audit.py refuses an app with a route that declares none, or two. A
policy checks the request's `Authorization: Bearer <key>` against the app's keys
(service/keys.py: scopes, digests). With no keys every policy lets the request through:
that is the loopback quick start, which the settings and service/loopback.py hold to this
machine unless GMLREC_AUTH=none says otherwise.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.keys import KeyRing, Scope

SCOPE_ATTRIBUTE = "scope"  # each policy's scope (None: anyone), read by the route audit

bearer = HTTPBearer(auto_error=False, scheme_name="APIKey",
                    description="`Authorization: Bearer <key>`; a key's scope is read, "
                                "catalog, write or admin (docs/contract.md, Access)")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def needs(scope: Scope) -> Any:
    """The dependency of a route callable with a key whose scope covers `scope` (any caller
    while no keys are configured): 401 without a key or with an unknown one, 403 when the
    key's scope does not cover it."""

    async def policy(request: Request, credentials: Credentials) -> None:
        keys: KeyRing = request.app.state.keys
        if not keys.enabled:
            return
        if credentials is None:
            raise HTTPException(401, "an API key is needed: Authorization: Bearer <key>",
                                headers={"WWW-Authenticate": "Bearer"})
        held = keys.scope_of(credentials.credentials)
        if held is None:
            raise HTTPException(401, "unknown API key",
                                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if not held.covers(scope):
            raise HTTPException(403, f"this key's scope is {held.value}; this route "
                                     f"needs {scope.value}")

    setattr(policy, SCOPE_ATTRIBUTE, scope)
    return Depends(policy)


async def _anyone() -> None:
    """The policy of a route anyone may call (/health, /ready, the explorer page)."""


setattr(_anyone, SCOPE_ATTRIBUTE, None)
OPEN = Depends(_anyone)
