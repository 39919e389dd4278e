"""The error answers routes declare for /openapi.json: `responses=` entries by status.

A route documents only the statuses it can answer: 413 where it takes a body, 404 where it
looks a user or an item up, 503 where it needs the model or the store, 409 for a refused
reload or catalog write, 401 where a key is checked and 403 where the key needs more than
`read` (and
service/openapi.py drops both from the schema of a server without keys). Each entry names
its body's model (service/problems.py) and gives an example of it.
"""

from __future__ import annotations

import copy
from typing import Any

from service.problems import (
    BodyTooLargeProblem,
    Problem,
    ReloadRefusedProblem,
    RetiredItemProblem,
    UnknownItemsProblem,
    UnknownUserProblem,
    ValidationProblem,
)

Responses = dict[int | str, dict[str, Any]]  # what FastAPI's `responses=` takes


class _Entry(dict):
    """A `responses=` entry that FastAPI copies whole. FastAPI up to at least 0.121 copies an
    entry shallowly, writes the body's schema into the copy's `content`, which is still the
    entry's own, and on the next schema it builds appends to the lists it finds there
    (fastapi.utils.deep_dict_update): the floors pass found a 404's anyOf listing its two
    models four times, then eight, once several apps or routes had used one entry."""

    def copy(self) -> dict[str, Any]:
        return copy.deepcopy(dict(self))


def _documented(status: int, model: Any, description: str, example: dict[str, Any],
               headers: dict[str, str] | None = None) -> Responses:
    """The `responses=` entry of one status: the body model, an example of it, and the
    headers the answer always carries (name -> description)."""
    entry = _Entry(model=model, description=description,
                   content={"application/json": {"example": example}})
    if headers:
        entry["headers"] = {name: {"description": text, "required": True,
                                   "schema": {"type": "string"}}
                            for name, text in headers.items()}
    return {status: entry}


RETRY_AFTER = {"Retry-After": "seconds to wait before retrying"}
UNKNOWN_ITEMS = {"detail": "unknown item id(s): 'i-404'", "item_ids": ["i-404"]}

NO_KEY = _documented(401, Problem, "no API key, or an unknown one",
                     {"detail": "an API key is needed: Authorization: Bearer <key>"},
                     {"WWW-Authenticate": "`Bearer`, with `error=\"invalid_token\"` for an "
                                          "unknown key"})
# only where the route needs more than `read`, the weakest scope: any known key may call the rest
WEAK_KEY = _documented(403, Problem, "the key's scope is too weak for this route",
                       {"detail": "this key's scope is read; this route needs write"})
INVALID = _documented(422, ValidationProblem, "a malformed request, named at its place: a value "
                                              "of another type or out of range, an unknown "
                                              "body key, a feature field the model cannot take",
                      {"detail": [{"loc": ["body", "n"], "type": "less_than_equal",
                                   "msg": "Input should be less than or equal to 1000"}]})
TOO_LARGE = _documented(413, BodyTooLargeProblem, "the body exceeds GMLREC_MAX_BODY_BYTES",
                        {"detail": "request body exceeds 1048576 bytes "
                                   "(GMLREC_MAX_BODY_BYTES)", "limit": 1048576})
NO_MODEL_ONLY = _documented(503, Problem, "no model loaded yet",
                            {"detail": "no model loaded: still loading"}, RETRY_AFTER)
MODEL_OR_STORE = _documented(503, Problem, "no model loaded yet, or the user store is down and "
                                           "the user is not one of the model's training users",
                             {"detail": "user 'u-404' is not in the model's training data: "
                                        "the store is unavailable; retry shortly"},
                             RETRY_AFTER)
NOT_SAVED = _documented(503, Problem, "no model loaded yet, or the user store is down: "
                                      "nothing was saved",
                        {"detail": "profile of 'u-1' not saved: the store is unavailable; "
                                   "retry shortly"}, RETRY_AFTER)
NO_USER = _documented(404, UnknownUserProblem, "no profile for this user id",
                      {"detail": "unknown user 'u-404': PUT /users/{user_id} creates a "
                                 "profile", "user_id": "u-404"})
NO_ITEM = _documented(404, UnknownItemsProblem, "the catalog lacks this item id", UNKNOWN_ITEMS)
NO_OR_RETIRED_ITEM = _documented(404, UnknownItemsProblem | RetiredItemProblem,
                                 "the catalog lacks this item id, or holds it retired",
                                 {"detail": "item 'i-9' is retired: PUT /items/{item_id} brings "
                                            "it back", "item_ids": ["i-9"], "source": "bundle",
                                  "retired": True})
ITEM_REFUSED = _documented(409, Problem, "the served bundle cannot score items it lacks (it "
                                         "was exported before added items: re-export it), or "
                                         "a new id beyond GMLREC_CATALOG_MAX_ADDED",
                           {"detail": "the catalog holds 1000000 item records already "
                                      "(GMLREC_CATALOG_MAX_ADDED): a new id is refused"})
ITEM_NOT_SAVED = _documented(503, Problem, "no model loaded yet, or the store is down: nothing "
                                           "was changed (the overlay read last serves on)",
                             {"detail": "item 'i-1' not saved: the store is unavailable; "
                                        "retry shortly"}, RETRY_AFTER)
NO_SIMILARITY = _documented(409, Problem, "the served bundle was exported before added items: "
                                          "it lacks the item features' tables that "
                                          "item-to-item similarity reads (re-export it)",
                            {"detail": "the served bundle (20261203T142907Z-2d7f2e6c) was "
                                       "exported before added items and lacks the item "
                                       "features' tables that item-to-item similarity reads: "
                                       "re-export it (python -m training export)"})
NO_USER_OR_ITEMS = _documented(404, UnknownUserProblem | UnknownItemsProblem,
                               "an unknown user, or item ids the catalog lacks (all named)",
                               UNKNOWN_ITEMS)
REFUSED = _documented(409, ReloadRefusedProblem, "the newest bundle was refused; the old one "
                                                 "serves on",
                      {"detail": "bundle refused: model.onnx: sha256 mismatch",
                       "serving": "20261203T142907Z-2d7f2e6c"})
NO_RECOMMENDATION = _documented(404, Problem, "no such answer to this user is kept (another "
                                               "user's, or older than "
                                               "GMLREC_ATTRIBUTION_WINDOW)",
                                {"detail": "no answer '3f2b8c1e9d4a4f6b8e0c7a5d1b2e3f40' to this "
                                           "user is kept: an id of another user's answer, or "
                                           "one older than GMLREC_ATTRIBUTION_WINDOW"})
STORE_ONLY = _documented(503, Problem, "the store is down: nothing was saved (or read)",
                         {"detail": "impression of '3f2b8c1e9d4a4f6b8e0c7a5d1b2e3f40' not "
                                    "saved: the store is unavailable; retry shortly"},
                         RETRY_AFTER)
