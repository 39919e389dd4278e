"""What /openapi.json publishes: the routes' own schema, adjusted to this server.

FastAPI builds the schema from the routes' declarations, which hold for every server. Three
things depend on the server, and `publish` writes them in through FastAPI's documented
`app.openapi` hook:

- its limits that are settings, at the places the request types mark (service/limits.py);
- its access: without keys no route needs one, so the schema declares no security and no
  401 or 403 (a generated client, or schemathesis, would otherwise send and expect what the
  server never checks); a keyless server that is not open on purpose (GMLREC_AUTH=none)
  answers callers on its own machine only, a 403 of any route (service/loopback.py);
- the model it serves: the feature maps take that model's fields (service/model_schema.py),
  fitted again when another version starts serving.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service import limits, loopback, model_schema
from service.problems import Problem
from service.settings import Settings

Schema = dict[str, Any]
# the answer of every route of a keyless server to a caller on another machine
LOOPBACK_ONLY = {
    "description": "this server has no API keys: it answers callers on its own machine only",
    "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{Problem.__name__}"},
        "example": {"detail": loopback.REFUSAL}}}}


def publish(app: FastAPI, settings: Settings) -> None:
    """Serve the schema of this server (see the module doc) at /openapi.json."""
    from_routes = app.openapi
    general: Schema = {}
    fitted: dict[str, Schema] = {}  # the served version's, by its key

    def schema() -> Schema:
        if not general:
            general.update(server_schema(from_routes(), settings))
        model_host = getattr(app.state, "model_host", None)  # set by the lifespan
        model = model_host.current if model_host is not None else None
        if model is None:
            return general
        if model.key not in fitted:
            fitted.clear()
            fitted[model.key] = model_schema.fit(general, model)
        return fitted[model.key]

    app.openapi = schema  # type: ignore[method-assign]  # FastAPI's documented hook


def server_schema(schema: Schema, settings: Settings) -> Schema:
    """The routes' schema as this server's limits and access make it (the module doc)."""
    limits.state(schema, settings)
    if settings.keys.enabled:
        return schema
    schema.get("components", {}).pop("securitySchemes", None)
    if settings.loopback_only:
        schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
            Problem.__name__, Problem.model_json_schema())
    for operations in schema["paths"].values():
        for operation in operations.values():
            operation.pop("security", None)
            responses = operation.setdefault("responses", {})
            for status in ("401", "403"):
                responses.pop(status, None)
            if settings.loopback_only:
                responses[str(loopback.STATUS)] = LOOPBACK_ONLY
    return schema
