"""How each error becomes an answer: the app's exception handlers.

Service errors answer their own status and body (service/errors.py); FastAPI's validation
errors and Starlette's HTTP errors answer in the same `{"detail": ...}` shapes
(service/problems.py), so a client reads every 4xx the same way. Nothing a client sends can
reach the generic 500 handler; it exists for bugs, and logs them.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from service.errors import Carried, ServiceError
from service.problems import FieldProblem, Problem, ValidationProblem
from service.safe_json import SafeJSONResponse

log = logging.getLogger("service.errors")


def install(app: FastAPI) -> None:
    """Register the handlers: service errors, validation errors, HTTP errors, and bugs."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _bug)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)  # registered for ServiceError only
    return SafeJSONResponse(exc.body(), exc.status, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 shape without echoing the input (it can be megabytes, or not JSON)."""
    assert isinstance(exc, RequestValidationError)
    body = ValidationProblem(detail=[
        FieldProblem(loc=list(e.get("loc", ())), msg=str(e.get("msg", "")),
                     type=str(e.get("type", ""))) for e in exc.errors()])
    return SafeJSONResponse(body.model_dump(), 422)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, Carried):
        return await _service_error(request, exc.error)
    if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI could not read the
        problem = f"body is not JSON text: {exc.__cause__}"  # body (bytes that are not UTF-8)
        body = ValidationProblem(detail=[FieldProblem(loc=["body"], msg=problem,
                                                      type="json_invalid")])
        return SafeJSONResponse(body.model_dump(), 422)
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


async def _bug(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return SafeJSONResponse(Problem(detail="internal error; the log has the request id")
                            .model_dump(), 500)
