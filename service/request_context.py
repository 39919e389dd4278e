"""Request context: a request id on every log line, one access line, and the request's timing.

The middleware takes the caller's X-Request-ID (or makes one), returns it on the answer, puts
it on every log line of the request, writes one access line, and times the request into the
latency histogram under its route template (`/recommend/{user_id}`, so user ids do not explode
the label set). The answer carries the time spent until its headers went out as
`Server-Timing: app;dur=<ms>`, which browsers show and the explorer page reads. Plain ASGI:
it adds no task or copy per request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import logs, metrics

log = logging.getLogger("service.access")
VALID_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")  # a caller's id we echo and log as is
REQUEST_ID = b"x-request-id"
SERVER_TIMING = b"server-timing"


class RequestContext:
    """Request id, access line and latency of every HTTP request (see the module doc)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        token = logs.request_id.set(rid)
        started, status = time.perf_counter(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                ms = (time.perf_counter() - started) * 1000
                message["headers"] = [*message.get("headers", []), (REQUEST_ID, rid.encode()),
                                      (SERVER_TIMING, f"app;dur={ms:.3f}".encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            metrics.REQUEST_SECONDS.labels(scope["method"], route).observe(seconds)
            metrics.REQUESTS.labels(scope["method"], route, str(status)).inc()
            log.info("%s %s %d", scope["method"], scope["path"], status, extra={
                "route": route, "status": status, "ms": round(seconds * 1000, 3)})
            logs.request_id.reset(token)


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID:
            text = value.decode("latin-1")
            if VALID_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex
