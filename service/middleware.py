"""Two ASGI middlewares (plain ASGI: they add no task or copy per request).

RequestContext: takes the caller's X-Request-ID (or makes one), returns it on the answer,
puts it on every log line of the request, writes one access line, and times the request
into the latency histogram under its route template (`/recommend/{user_id}`, so user ids
do not explode the label set). The answer carries the time spent until its headers went out
as `Server-Timing: app;dur=<ms>`, which browsers show and the explorer page reads.

BodyLimit: answers 413 for a body over the limit, from Content-Length before reading, or
while reading a body without one, before the route ever sees it.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import logs, metrics
from service.errors import BodyTooLarge, Carried

log = logging.getLogger("service.access")
VALID_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")  # a caller's id we echo and log as is
REQUEST_ID = b"x-request-id"
SERVER_TIMING = b"server-timing"


class RequestContext:
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


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            await _too_large(send, self.max_bytes)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # an HTTPException: FastAPI's body reader
                    raise Carried(BodyTooLarge(self.max_bytes))  # passes it
            return message

        await self.app(scope, counted_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(BodyTooLarge(limit).body()).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
