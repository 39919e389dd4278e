"""Who may call what: API keys with scopes (CONTRACT.md, Access; README, Security).

A key is sent as `Authorization: Bearer <key>` and carries one scope; each scope may do what
the one below it may, and more:

    read   score, recommend, items, the model's description
    write  read, plus profiles, histories and interactions (any user's: keys name no user)
    admin  write, plus GET /users, /metrics and /admin/*

Keys come from GMLREC_API_KEYS and GMLREC_API_KEYS_FILE, as `scope:key` pairs. Only their
SHA-256 digests are kept, and a presented key is hashed and compared with every digest in
constant time, so neither memory nor timing gives a key away; no key is ever logged.

Every route declares its policy where it is defined, `dependencies=[needs(Scope.READ)]` or
`[OPEN]`, and tests/service/api/test_access.py fails for any route of the app without one.
With no keys the service is open: that is the loopback quick start, and `python -m service`
refuses any other address without keys unless GMLREC_AUTH=none says so on purpose
(`exposure_problem`).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.routing import Mount, Route

from service.settings import Settings

KEY_BYTES = 32  # `keys new`: 256 random bits, 43 URL-safe characters
MIN_KEY_CHARS = 16  # shorter keys are refused when read: guessable
# routes FastAPI and the explorer add that are not APIRoutes: public by design (the schema,
# the docs and the page's static files hold nothing a key protects)
PUBLIC_PATHS = frozenset({"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc",
                          "/explorer"})


class Scope(enum.IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3


class KeysError(ValueError):
    """GMLREC_API_KEYS or its file is malformed; the message never holds a key."""


@dataclass(frozen=True)
class KeyRing:
    """The digests of the configured keys, each with its scope."""

    digests: tuple[tuple[bytes, Scope], ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    @staticmethod
    def parse(text: str, where: str) -> KeyRing:
        """`scope:key` pairs separated by commas or new lines; blank entries and `#`
        comments skipped."""
        entries = []
        for number, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            scope, sep, key = entry.partition(":")
            if not sep or scope.strip().upper() not in Scope.__members__:
                raise KeysError(f"{where}: entry {number} is not scope:key with scope read, "
                                "write or admin")
            if len(key.strip()) < MIN_KEY_CHARS:
                raise KeysError(f"{where}: entry {number}: a key needs at least "
                                f"{MIN_KEY_CHARS} characters (python -m service keys new)")
            entries.append((_digest(key.strip()), Scope[scope.strip().upper()]))
        return KeyRing(tuple(entries))

    @staticmethod
    def of(settings: Settings) -> KeyRing:
        """The keys of GMLREC_API_KEYS and GMLREC_API_KEYS_FILE together."""
        rings = []
        if settings.api_keys is not None:
            rings.append(KeyRing.parse(settings.api_keys.get_secret_value(),
                                       "GMLREC_API_KEYS"))
        if settings.api_keys_file is not None:
            rings.append(KeyRing.parse(_read_keys_file(settings.api_keys_file),
                                       f"GMLREC_API_KEYS_FILE ({settings.api_keys_file})"))
        return KeyRing(tuple(d for ring in rings for d in ring.digests))

    def scope_of(self, key: str) -> Scope | None:
        """The scope of a presented key, None if unknown. Every digest is compared, with
        hmac.compare_digest, whichever matches."""
        presented, found = _digest(key), None
        for digest, scope in self.digests:
            if hmac.compare_digest(presented, digest):
                found = scope
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _read_keys_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise KeysError(f"GMLREC_API_KEYS_FILE: cannot read {path}: "
                        f"{type(err).__name__}") from None


def new_key(scope: Scope) -> str:
    """A fresh `scope:key` line for GMLREC_API_KEYS_FILE."""
    return f"{scope.name.lower()}:{secrets.token_urlsafe(KEY_BYTES)}"


def is_loopback(host: str) -> bool:
    """Whether a listen address only takes connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(settings: Settings, keys: KeyRing) -> str | None:
    """Why the service must not start as configured, or None: no keys on an address other
    machines reach, unless GMLREC_AUTH=none; GMLREC_AUTH=none with keys is a contradiction."""
    if settings.auth == "none" and keys.enabled:
        return "GMLREC_AUTH=none but API keys are set: drop one or the other"
    if not keys.enabled and settings.auth != "none" and not is_loopback(settings.host):
        return (f"GMLREC_HOST={settings.host} without API keys would let anyone who reaches "
                "the port write profiles and reload models; set GMLREC_API_KEYS_FILE (python "
                "-m service keys new --scope admin makes a key), or GMLREC_AUTH=none to serve "
                "without keys on purpose")
    return None


bearer = HTTPBearer(auto_error=False, scheme_name="APIKey",
                    description="`Authorization: Bearer <key>`; a key's scope is read, write "
                                "or admin (README, Security)")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def needs(scope: Scope) -> Any:
    """The dependency of a route callable with a key of `scope` or above (any caller while
    no keys are configured): 401 without a key or with an unknown one, 403 when the key's
    scope is too weak."""

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
        if held < scope:
            raise HTTPException(403, f"this key's scope is {held.name.lower()}; this route "
                                     f"needs {scope.name.lower()}")

    policy.scope = scope  # type: ignore[attr-defined]  # read by the route-policy test
    return Depends(policy)


async def _anyone() -> None:
    """The policy of a route anyone may call (/health, /ready, the explorer page)."""


_anyone.scope = None  # type: ignore[attr-defined]
OPEN = Depends(_anyone)


def publish(app: FastAPI, keys: KeyRing) -> None:
    """Make /openapi.json say what this server does: without keys no route needs one, so the
    schema declares no security and no 401/403 (a generated client, or schemathesis, would
    otherwise send and expect what the server never checks)."""
    if keys.enabled:
        return
    build = app.openapi

    def open_schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schema.get("components", {}).pop("securitySchemes", None)
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation.pop("security", None)
                    for status in ("401", "403"):
                        operation.get("responses", {}).pop(status, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = open_schema  # type: ignore[method-assign]  # FastAPI's documented hook


def policies(route: APIRoute) -> list[Scope | None]:
    """The access policies a route declares (its router's and its own): one is right."""
    return [d.dependency.scope for d in route.dependencies  # type: ignore[union-attr]
            if hasattr(d.dependency, "scope")]


def undeclared(app: FastAPI, routers: Sequence[APIRouter]) -> list[str]:
    """Every route of the app without exactly one policy, as "METHODS path": the app's own
    routes and those of the routers it included (FastAPI may keep an included router whole
    in app.routes rather than its routes, so those are walked from the routers)."""
    wrong, included = [], 0
    for route in [*(r for router in routers for r in router.routes), *app.routes]:
        if isinstance(route, APIRoute):
            if len(policies(route)) != 1:
                wrong.append(f"{','.join(sorted(route.methods))} {route.path}")
        elif isinstance(route, Route | Mount):
            if route.path not in PUBLIC_PATHS:
                wrong.append(f"{route.path} (not an API route, not public by design)")
        else:
            included += 1
    if included > len(routers):
        wrong.append(f"{included - len(routers)} route(s) of a router this check was not given")
    return list(dict.fromkeys(wrong))  # older FastAPI copies a router's routes into the app
