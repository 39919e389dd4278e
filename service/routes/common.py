"""What several routes share: the id path parameter, the user a body names, item answers."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import Path
from pydantic import BaseModel
from starlette.responses import Response

from service.explanation_schema import Explanation
from service.schemas import MAX_ID, PRINTABLE, ItemScore, UserFeatures, as_text
from service.served_model import ServedModel
from service.union_catalog import UnionCatalog
from service.user_state import ResolvedUser, Users

# an id in the path is one segment: an id holding '/' is reachable through the bodies of
# POST /score and POST /recommend only
PathId = Annotated[str, Path(min_length=1, max_length=MAX_ID, pattern=PRINTABLE,
                             examples=["196"])]


async def who(users: Users, model: ServedModel, body: UserFeatures,
              seen_in: UnionCatalog | None, with_row: bool = False) -> ResolvedUser:
    """The user a body names: one by its id (with its overrides and context), or an
    anonymous one given by features; with its seen items as positions of `seen_in`."""
    user, context = as_text(body.user), as_text(body.context)
    if body.user_id is None:
        return users.anonymous(model, user or {}, context)
    return await users.resolve(model, body.user_id, user, context, seen_in, with_row)


def scored_items(catalog: UnionCatalog, positions: np.ndarray, scores: np.ndarray,
                 details: bool, explain_for: tuple[ServedModel, ResolvedUser] | None = None
                 ) -> list[ItemScore]:
    """Items (union positions) with their scores, in the given order, each shown as
    UnionCatalog.display shows it (its title; with details, every display attribute); with
    `explain_for` (explain=true: the model, and the user resolved with its row), each
    item's explanation."""
    explained: list[Explanation | None] = [None] * len(positions)
    if explain_for is not None:
        model, user = explain_for
        assert user.row is not None, "resolve the user with_row to explain"
        explained = list(model.explanations.of(catalog, user.row, positions))
    return [ItemScore(item_id=catalog.item_id(p), score=float(s), explanation=e,
                      **catalog.display(p, every=details))
            for p, s, e in zip(positions.tolist(), scores.tolist(), explained)]


DEGRADED = "X-Degraded"  # on answers computed without the user store (its value says so)


def answer(body: BaseModel, degraded: bool = False) -> Response:
    """The answer as JSON, serialized once by pydantic: a route that returns the model
    itself has FastAPI validate it against its response_model a second time (the routes
    keep response_model for the OpenAPI schema)."""
    headers = {DEGRADED: "user store unavailable"} if degraded else None
    return Response(body.model_dump_json().encode(), media_type="application/json",
                    headers=headers)
