"""The published schema fitted to the served model: its feature maps take that model's fields.

So a body the schema admits is a body the service takes.

pydantic publishes the general rule of a feature map: printable names, at most 64 fields of
at most 64 values. Which fields there are, and how many values each takes, only the loaded
model knows; it checks them when a request comes (service/profiles.py, service/filters.py),
and a field it cannot take is a 422 at its place. While a model serves, the schema states
that check too: each feature map takes the model's fields and no other (`properties`,
`propertyNames` with their `enum`), each with the most values it has room for, and the
request bodies' examples keep only fields the model has. Values are not listed: a value the
model does not know is ignored, not refused (docs/contract.md), and the vocabularies stay
behind a key (GET /model). service/openapi.py fits the schema again when another version
starts serving; with no model loaded it publishes the general one.
"""

from __future__ import annotations

import copy
from typing import Any

from service.served_model import ServedModel

Limits = dict[str, int | None]  # field -> the most values it takes (None: the general rule)

# the properties of the request bodies that hold feature maps, and whose fields they take
USER_MAPS = {("ScoreRequest", "user"), ("ScoreRequest", "context"),
             ("RecommendRequest", "user"), ("RecommendRequest", "context"),
             ("ProfileRequest", "features")}
ITEM_MAPS = {("ItemFilter", "include"), ("ItemFilter", "exclude")}
ADDED_ITEM_MAPS = {("ItemRequest", "features")}


def fit(schema: dict[str, Any], model: ServedModel) -> dict[str, Any]:
    """A copy of `schema` whose feature maps take exactly the fields `model` takes."""
    schema = copy.deepcopy(schema)
    bodies = schema["components"]["schemas"]
    user_fields, item_fields = model.description.request_fields()
    user: Limits = dict(user_fields)
    item: Limits = dict.fromkeys(item_fields)
    added: Limits = dict(model.description.item_fields())
    by_place: dict[tuple[str, str], Limits] = {}
    for places, fields in ((USER_MAPS, user), (ITEM_MAPS, item), (ADDED_ITEM_MAPS, added)):
        for body, key in places:
            _restrict(bodies[body]["properties"][key], fields)
            by_place[body, key] = fields
    for name, body in bodies.items():
        if "examples" in body:  # a key names its body's own map, else the map of that key
            by_key = {key: fields for (_, key), fields in by_place.items()} | \
                {key: fields for (of, key), fields in by_place.items() if of == name}
            body["examples"] = [_trimmed(example, by_key) for example in body["examples"]]
    return schema


def _restrict(node: dict[str, Any], fields: Limits) -> None:
    """A feature map's schema (or its nullable form) to take `fields` only."""
    (the_map,) = [n for n in node.get("anyOf", [node]) if n.get("type") == "object"]
    (value,) = the_map.pop("patternProperties").values()
    the_map["properties"] = {f: _at_most(value, most) for f, most in fields.items()}
    the_map["additionalProperties"] = False
    the_map["propertyNames"]["enum"] = list(fields)


def _at_most(value: dict[str, Any], most: int | None) -> dict[str, Any]:
    """A field's value rule, a list of it holding at most `most` values."""
    value = copy.deepcopy(value)
    for form in value.get("anyOf", [value]):
        if form.get("type") == "array" and most is not None:
            form["maxItems"] = min(form["maxItems"], most)
    return value


def _trimmed(example: Any, by_key: dict[str, Limits]) -> Any:
    """An example without the fields (or the values) the model would refuse."""
    if isinstance(example, list):
        return [_trimmed(item, by_key) for item in example]
    if not isinstance(example, dict):
        return example
    kept = {}
    for key, value in example.items():
        if key in by_key and isinstance(value, dict):
            fields = by_key[key]
            value = {f: v for f, v in value.items() if f in fields and _fits(v, fields[f])}
        kept[key] = _trimmed(value, by_key)
    return kept


def _fits(value: Any, most: int | None) -> bool:
    return most is None or len(value if isinstance(value, list) else [value]) <= most
