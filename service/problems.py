"""The bodies of error answers, as /openapi.json publishes them, and the `responses=` entries
routes declare them with.

service/errors.py writes these bodies; the models here only describe them, so a client
generated from the schema parses every error the service sends (and
tests/service/api/test_error_contract.py provokes each documented status of each route and
checks its body against the published schema, so the two cannot drift apart unnoticed).
Each model forbids other keys: the schema then says exactly what a body holds.

A route documents only the statuses it can answer: 413 where it takes a body, 404 where it
looks a user or an item up, 503 where it needs the model or the store, 409 for a refused
reload, 401 where a key is checked and 403 where the key needs more than `read` (and
service/access.py drops both from the schema of a server without keys).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """One problem in words."""

    model_config = ConfigDict(extra="forbid")
    detail: str


class UnknownUserProblem(Problem):
    user_id: str = Field(description="the user id no profile was found for")


class UnknownItemsProblem(Problem):
    item_ids: list[str] = Field(description="every requested id the catalog lacks")


class BodyTooLargeProblem(Problem):
    limit: int = Field(description="the largest body accepted, in bytes "
                                   "(GMLREC_MAX_BODY_BYTES)")


class ReloadRefusedProblem(Problem):
    serving: str | None = Field(description="the version that serves on, if any")


class FieldProblem(BaseModel):
    """What is wrong at one place of the request (FastAPI's shape, without the input
    echoed back: it can be megabytes)."""

    model_config = ConfigDict(extra="forbid")
    loc: list[str | int] = Field(description="where: `body`, `query`, `path`, then the keys "
                                             "and positions down to the value")
    msg: str
    type: str = Field(description="a machine-readable kind (`missing`, `string_too_long`, "
                                  "`invalid_field`, ...)")


class ValidationProblem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    detail: list[FieldProblem]


class _Entry(dict):
    """A `responses=` entry that FastAPI copies whole. FastAPI up to at least 0.121 copies an
    entry shallowly, writes the body's schema into the copy's `content`, which is still the
    entry's own, and on the next schema it builds appends to the lists it finds there
    (fastapi.utils.deep_dict_update): the floors pass found a 404's anyOf listing its two
    models four times, then eight, once several apps or routes had used one entry."""

    def copy(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self))


def _entry(model: Any, description: str, example: dict[str, Any],
           headers: dict[str, str] | None = None) -> dict[str, Any]:
    """One `responses=` entry: the body model, an example of it, and the headers the
    answer always carries (name -> description)."""
    entry = _Entry(model=model, description=description,
                   content={"application/json": {"example": example}})
    if headers:
        entry["headers"] = {name: {"description": text, "required": True,
                                   "schema": {"type": "string"}}
                            for name, text in headers.items()}
    return entry


RETRY_AFTER = {"Retry-After": "seconds to wait before retrying"}
UNKNOWN_ITEMS = {"detail": "unknown item id(s): 'i-404'", "item_ids": ["i-404"]}

NO_KEY = {401: _entry(Problem, "no API key, or an unknown one",
                     {"detail": "an API key is needed: Authorization: Bearer <key>"},
                     {"WWW-Authenticate": "`Bearer`, with `error=\"invalid_token\"` for an "
                                          "unknown key"})}
# only where the route needs more than `read`, the weakest scope: any known key may call the rest
WEAK_KEY = {403: _entry(Problem, "the key's scope is too weak for this route",
                        {"detail": "this key's scope is read; this route needs write"})}
INVALID = {422: _entry(ValidationProblem, "a malformed request, named at its place: a value "
                                          "of another type or out of range, an unknown body "
                                          "key, a feature field the model cannot take",
                       {"detail": [{"loc": ["body", "n"], "type": "less_than_equal",
                                    "msg": "Input should be less than or equal to 1000"}]})}
TOO_LARGE = {413: _entry(BodyTooLargeProblem, "the body exceeds GMLREC_MAX_BODY_BYTES",
                         {"detail": "request body exceeds 1048576 bytes "
                                    "(GMLREC_MAX_BODY_BYTES)", "limit": 1048576})}
NO_MODEL_ONLY = {503: _entry(Problem, "no model loaded yet",
                             {"detail": "no model loaded: still loading"}, RETRY_AFTER)}
MODEL_OR_STORE = {503: _entry(Problem, "no model loaded yet, or the user store is down and "
                                       "the user is not one of the model's training users",
                              {"detail": "user 'u-404' is not in the model's training data: "
                                         "the user store is unavailable; retry shortly"},
                              RETRY_AFTER)}
NOT_SAVED = {503: _entry(Problem, "no model loaded yet, or the user store is down: nothing "
                                  "was saved",
                         {"detail": "profile of 'u-1' not saved: the user store is "
                                    "unavailable; retry shortly"}, RETRY_AFTER)}
NO_USER = {404: _entry(UnknownUserProblem, "no profile for this user id",
                       {"detail": "unknown user 'u-404': PUT /users/{user_id} creates a "
                                  "profile", "user_id": "u-404"})}
NO_ITEM = {404: _entry(UnknownItemsProblem, "the catalog lacks this item id", UNKNOWN_ITEMS)}
NO_USER_OR_ITEMS = {404: _entry(UnknownUserProblem | UnknownItemsProblem,
                                "an unknown user, or item ids the catalog lacks (all named)",
                                UNKNOWN_ITEMS)}
REFUSED = {409: _entry(ReloadRefusedProblem, "the newest bundle was refused; the old one "
                                             "serves on",
                       {"detail": "bundle refused: model.onnx: sha256 mismatch",
                        "serving": "20261203T142907Z-2d7f2e6c"})}
