"""The request limits that are settings: held in each request, stated in the published schema.

GMLREC_MAX_N bounds `n` (items per answer) and GMLREC_MAX_SCORE_ITEMS the item ids of a
body. The request types are built once, at import, so they cannot hold a server's value:
a type marks where a limit applies (`Limit.mark`), the route's dependency holds the request
to the value (`Limit.hold`: a 422 at the place, naming the variable, as pydantic words its
own), and the published schema states it there (`state`, through service/openapi.py).
"""

from __future__ import annotations

import enum
from typing import Any

from service.errors import InvalidInput
from service.settings import Settings

MARK = "x-gmlrec-limit"  # in a type's schema: the limit that applies there; published as its value


class Limit(enum.Enum):
    """A limit: its Settings field, and the JSON Schema keyword that states it."""

    MAX_N = ("max_n", "maximum")
    MAX_SCORE_ITEMS = ("max_score_items", "maxItems")

    def __init__(self, setting: str, keyword: str):
        self.setting, self.keyword = setting, keyword

    @property
    def variable(self) -> str:
        return f"GMLREC_{self.setting.upper()}"

    def mark(self) -> dict[str, Any]:
        """The `json_schema_extra` of a Field or Query this limit applies to."""
        return {MARK: self.name}

    def of(self, settings: Settings) -> int:
        value: int = getattr(settings, self.setting)
        return value

    def hold(self, settings: Settings, value: int, loc: tuple[str | int, ...]) -> None:
        """Refuse a request whose value (a number, or a list's length) is over the limit."""
        most = self.of(settings)
        if value <= most:
            return
        if self.keyword == "maximum":
            raise InvalidInput(loc, f"Input should be less than or equal to {most} "
                                    f"({self.variable})", "less_than_equal")
        raise InvalidInput(loc, f"List should have at most {most} items ({self.variable}), "
                                f"not {value}", "too_long")


def state(node: Any, settings: Settings) -> None:
    """Write each marked limit's value into a schema (in place), in its keyword's place."""
    if isinstance(node, dict):
        if MARK in node:
            limit = Limit[node.pop(MARK)]
            node[limit.keyword] = limit.of(settings)
        for value in node.values():
            state(value, settings)
    elif isinstance(node, list):
        for value in node:
            state(value, settings)
