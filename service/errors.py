"""What the service answers when it cannot answer the question asked.

    ServiceError                  an answer other than 200, with a body that names the problem
    ├── InvalidInput       422    a field's value the model cannot take (unknown field, ...)
    ├── UnknownUser        404    no profile for this user id, here or in the bundle
    ├── UnknownItems       404    item ids the catalog lacks, all of them named
    ├── BodyTooLarge       413    the body exceeds GMLREC_MAX_BODY_BYTES
    ├── StoreDown          503    a write (or an unknown user's read) while the store is down
    ├── NoModel            503    no bundle is loaded (the models folder is empty or broken)
    └── ReloadRefused      409    POST /admin/reload found a bundle it would not serve

Bodies are `{"detail": ...}` like FastAPI's own: a message for one problem, the list of
`{"loc", "msg", "type"}` for field errors, so a client reads every 4xx the same way;
service/problems.py publishes each body's exact shape in /openapi.json. Nothing
a client sends can reach the generic 500 handler; it exists for bugs, and logs them.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

log = logging.getLogger("service.errors")


class ServiceError(Exception):
    status = 500

    def __init__(self, message: str, **extra: Any):
        super().__init__(message)
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return {"detail": str(self), **self.extra}


class InvalidInput(ServiceError):
    status = 422

    def __init__(self, loc: tuple[str | int, ...], message: str, kind: str = "value_error"):
        super().__init__(message)
        self.loc, self.kind = loc, kind

    def body(self) -> dict[str, Any]:
        return {"detail": [{"loc": list(self.loc), "msg": str(self), "type": self.kind}]}


class UnknownUser(ServiceError):
    status = 404

    def __init__(self, user_id: str):
        super().__init__(f"unknown user {user_id!r}: PUT /users/{{user_id}} creates a profile",
                         user_id=user_id)


class UnknownItems(ServiceError):
    status = 404

    def __init__(self, item_ids: list[str]):
        shown = ", ".join(repr(i) for i in item_ids[:20])
        more = f" and {len(item_ids) - 20} more" if len(item_ids) > 20 else ""
        super().__init__(f"unknown item id(s): {shown}{more}", item_ids=item_ids)


class BodyTooLarge(ServiceError):
    status = 413

    def __init__(self, limit: int):
        super().__init__(f"request body exceeds {limit} bytes (GMLREC_MAX_BODY_BYTES)",
                         limit=limit)


class StoreDown(ServiceError):
    status = 503

    def __init__(self, what: str):
        super().__init__(f"{what}: the user store is unavailable; retry shortly")
        self.headers = {"Retry-After": "1"}


class NoModel(ServiceError):
    status = 503

    def __init__(self, why: str):
        super().__init__(f"no model loaded: {why}")
        self.headers = {"Retry-After": "5"}


class ReloadRefused(ServiceError):
    status = 409


class Carried(StarletteHTTPException):
    """A ServiceError raised where only an HTTPException gets through (FastAPI's body reader
    turns anything else raised while reading into a 400), answered as the error itself."""

    def __init__(self, error: ServiceError):
        super().__init__(error.status, str(error))
        self.error = error


class SafeJSONResponse(JSONResponse):
    """JSON that survives any str a client managed to send (a lone surrogate in an echoed
    value would make the UTF-8 encoder raise): escape to ASCII only when it must."""

    def render(self, content: Any) -> bytes:
        try:
            return super().render(content)
        except UnicodeEncodeError:
            return json.dumps(content, ensure_ascii=True, allow_nan=False,
                              separators=(",", ":")).encode("ascii")


def install(app: FastAPI) -> None:
    """Register the handlers: service errors, validation errors, HTTP errors, and bugs."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _bug)


async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    return SafeJSONResponse(exc.body(), exc.status, headers=exc.headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 shape without echoing the input (it can be megabytes, or not JSON)."""
    detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in exc.errors()]
    return SafeJSONResponse({"detail": detail}, 422)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if isinstance(exc, Carried):
        return await _service_error(request, exc.error)
    if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI could not read the
        problem = f"body is not JSON text: {exc.__cause__}"  # body (bytes that are not UTF-8)
        return SafeJSONResponse({"detail": [{"loc": ["body"], "msg": problem,
                                             "type": "json_invalid"}]}, 422)
    headers = exc.headers
    documented = _documented_methods(request) if exc.status_code == 405 else None
    if documented:  # Starlette's Allow names the methods of the first route on the path only
        headers = {**(headers or {}), "Allow": ", ".join(documented)}
    return SafeJSONResponse({"detail": exc.detail}, exc.status_code, headers=headers)


def _documented_methods(request: Request) -> list[str]:
    """The methods the OpenAPI schema lists for this path (GET and PUT /users/{user_id} are
    two routes, so no one route knows both)."""
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        parts = re.split(r"(\{[^}]+\})", template)
        pattern = "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts)
        if re.fullmatch(pattern, request.url.path):
            methods |= {method.upper() for method in operations}
    return sorted(methods)


async def _bug(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return SafeJSONResponse({"detail": "internal error; the log has the request id"}, 500)
