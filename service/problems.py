"""The bodies of error answers, one pydantic model per shape, written and published alike.

The errors are written through these models and /openapi.json publishes them.

Bodies are `{"detail": ...}` like FastAPI's own: a message for one problem, the list of
`{"loc", "msg", "type"}` for field errors, so a client reads every 4xx the same way. Each
model forbids other keys: the schema then says exactly what a body holds, and an error
that tried to send more would fail loudly here instead of drifting from its schema
(tests/service/api/test_error_contract.py checks every documented answer against it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """One problem in words."""

    model_config = ConfigDict(extra="forbid")
    detail: str


class UnknownUserProblem(Problem):
    user_id: str = Field(description="the user id no profile was found for")


class UnknownItemsProblem(Problem):
    item_ids: list[str] = Field(description="every requested id the catalog lacks")


class RetiredItemProblem(UnknownItemsProblem):
    source: Literal["bundle", "added"] = Field(description="where the retired item came from")
    retired: bool = Field(description="true: DELETE /items/{item_id} retired it, and a PUT "
                                      "brings it back")


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
