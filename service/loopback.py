"""The loopback rule: a service without API keys answers this machine only.

GMLREC_AUTH=none says to serve without keys on purpose, and lifts the rule.

Settings refuse to start a keyless service on an address other machines reach
(service/settings.py). That is not enough alone: `uvicorn service.app:app --host 0.0.0.0`
binds an address the settings never see. So a keyless app also holds each request to the
rule (`LoopbackOnly`): one that reached the server on an address other than loopback is a
403, whatever address the server was bound to. A connection's server address is the one it
arrived at (ASGI's `scope["server"]`), so a server bound to 0.0.0.0 still answers a client
on this machine that connects to 127.0.0.1; a Unix socket (no address, or a file's path
without a port) is this machine's only.
"""

from __future__ import annotations

import ipaddress

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from service.problems import Problem

STATUS = 403
REFUSAL = ("this server has no API keys, so it answers callers on its own machine only: set "
           "GMLREC_API_KEYS_FILE (python -m service keys new --scope admin makes a key), or "
           "GMLREC_AUTH=none to serve without keys on purpose")


def is_loopback(host: str) -> bool:
    """Whether an address (or `localhost`) only takes connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class LoopbackOnly:
    """ASGI middleware: a 403 for every HTTP request that arrived on a non-loopback address
    (the app serves no WebSocket)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _arrived_locally(scope.get("server")):
            answer = JSONResponse(Problem(detail=REFUSAL).model_dump(), STATUS)
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _arrived_locally(server: tuple[str, int | None] | None) -> bool:
    """Whether a connection's server address (ASGI's `scope["server"]`) is this machine's."""
    if server is None:
        return True
    host, port = server
    return is_loopback(str(host)) or (port is None and str(host).startswith("/"))
