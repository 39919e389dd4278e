"""The errors the service answers with: each a status and a body that names the problem.

    ServiceError                  an answer other than 200
    ├── InvalidInput       422    a field's value the model cannot take (unknown field, ...)
    ├── UnknownUser        404    no profile for this user id, here or in the bundle
    ├── UnknownItems       404    item ids the catalog lacks, all of them named
    ├── RetiredItem        404    an item DELETE /items/{item_id} retired (GET /items/{item_id})
    ├── BodyTooLarge       413    the body exceeds GMLREC_MAX_BODY_BYTES
    ├── StoreDown          503    a write (or an unknown user's read) while the store is down
    ├── NoModel            503    no bundle is loaded (the models folder is empty or broken)
    ├── ReloadRefused      409    POST /admin/reload found a bundle it would not serve
    ├── NoAddedItems       409    PUT /items/{item_id} on a bundle exported before added items
    ├── CatalogFull        409    PUT /items/{item_id} of a new id beyond GMLREC_CATALOG_MAX_ADDED
    └── NoItemSimilarity   409    similar items or diversity on a bundle exported before added
                                  items (it lacks the item features' tables)

Each body is one of service/problems.py's models, which /openapi.json publishes;
service/error_handlers.py answers with it.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException

from service.problems import (
    BodyTooLargeProblem,
    FieldProblem,
    Problem,
    ReloadRefusedProblem,
    RetiredItemProblem,
    UnknownItemsProblem,
    UnknownUserProblem,
    ValidationProblem,
)

SHOWN_IDS = 20  # unknown ids an UnknownItems message names; its body lists them all


class ServiceError(Exception):
    status = 500
    problem: type[Problem] = Problem  # the body's model

    def __init__(self, message: str, **extra: Any):
        super().__init__(message)
        self.extra = extra
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        return self.problem(detail=str(self), **self.extra).model_dump()


class InvalidInput(ServiceError):
    status = 422

    def __init__(self, loc: tuple[str | int, ...], message: str, kind: str = "value_error"):
        super().__init__(message)
        self.loc, self.kind = loc, kind

    def body(self) -> dict[str, Any]:
        return ValidationProblem(detail=[FieldProblem(loc=list(self.loc), msg=str(self),
                                                      type=self.kind)]).model_dump()


class UnknownUser(ServiceError):
    status = 404
    problem = UnknownUserProblem

    def __init__(self, user_id: str):
        super().__init__(f"unknown user {user_id!r}: PUT /users/{{user_id}} creates a profile",
                         user_id=user_id)


class UnknownItems(ServiceError):
    status = 404
    problem = UnknownItemsProblem

    def __init__(self, item_ids: list[str]):
        shown = ", ".join(repr(i) for i in item_ids[:SHOWN_IDS])
        more = f" and {len(item_ids) - SHOWN_IDS} more" if len(item_ids) > SHOWN_IDS else ""
        super().__init__(f"unknown item id(s): {shown}{more}", item_ids=item_ids)


class RetiredItem(ServiceError):
    status = 404
    problem = RetiredItemProblem

    def __init__(self, item_id: str, source: str):
        super().__init__(f"item {item_id!r} is retired: PUT /items/{{item_id}} brings it back",
                         item_ids=[item_id], source=source, retired=True)


class BodyTooLarge(ServiceError):
    status = 413
    problem = BodyTooLargeProblem

    def __init__(self, limit: int):
        super().__init__(f"request body exceeds {limit} bytes (GMLREC_MAX_BODY_BYTES)",
                         limit=limit)


class UnknownRecommendation(ServiceError):
    status = 404

    def __init__(self, recommendation_id: str):
        super().__init__(f"no answer {recommendation_id!r} to this user is kept: an id of "
                         "another user's answer, or one older than GMLREC_ATTRIBUTION_WINDOW")


class StoreDown(ServiceError):
    status = 503

    def __init__(self, what: str):
        super().__init__(f"{what}: the store is unavailable; retry shortly")
        self.headers = {"Retry-After": "1"}


class NoModel(ServiceError):
    status = 503

    def __init__(self, why: str):
        super().__init__(f"no model loaded: {why}")
        self.headers = {"Retry-After": "5"}


class ReloadRefused(ServiceError):
    status = 409
    problem = ReloadRefusedProblem

    def __init__(self, message: str, serving: str | None):
        super().__init__(message, serving=serving)


class NoAddedItems(ServiceError):
    status = 409

    def __init__(self, version: str):
        super().__init__(f"the served bundle ({version}) was exported before added items: "
                         "re-export it (python -m training export) to add items through PUT "
                         "/items/{item_id}")


class CatalogFull(ServiceError):
    status = 409

    def __init__(self, most: int):
        super().__init__(f"the catalog holds {most} item records already "
                         "(GMLREC_CATALOG_MAX_ADDED): a new id is refused")


class NoItemSimilarity(ServiceError):
    status = 409

    def __init__(self, version: str):
        super().__init__(f"the served bundle ({version}) was exported before added items and "
                         "lacks the item features' tables that item-to-item similarity reads: "
                         "re-export it (python -m training export)")


class Carried(StarletteHTTPException):
    """A ServiceError raised where only an HTTPException gets through (FastAPI's body reader
    turns anything else raised while reading into a 400), answered as the error itself."""

    def __init__(self, error: ServiceError):
        super().__init__(error.status, str(error))
        self.error = error
