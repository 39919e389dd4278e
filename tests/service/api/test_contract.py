"""The published schema is what the API accepts: strict bodies (no silent coercion), every
key rule in the schema, operation ids a generated client can name methods after, and an
example for every request body."""

from __future__ import annotations

import re

import pytest

from service.app import create_app
from tests.service.api.conftest import settings_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/score", {"user_id": "0", "item_ids": ["1"], "details": 0}, "details"),
    ("/score", {"user_id": "0", "item_ids": ["1"], "details": "true"}, "details"),
    ("/recommend", {"user_id": "0", "n": "5"}, "n"),
    ("/recommend", {"user_id": "0", "n": 5.0}, "n"),
    ("/recommend", {"user_id": "0", "exclude_seen": 1}, "exclude_seen"),
    ("/recommend", {"user_id": 0}, "user_id"),
])
async def test_bodies_are_strict_a_value_of_another_type_is_a_422(client, path, body, field):
    r = await client.post(path, json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], r.text
    fixed = {**body, field: {"details": True, "n": 5, "exclude_seen": False,
                             "user_id": "0"}[field]}
    assert (await client.post(path, json=fixed)).status_code == 200


async def test_query_parameters_still_read_their_text(client):
    r = await client.get("/recommend/0", params={"n": "3", "exclude_seen": "false"})
    assert r.status_code == 200 and len(r.json()["items"]) == 3


def schema_of(gmlfm) -> dict:
    return create_app(settings_for(gmlfm.models_dir)).openapi()


def feature_maps(node):
    """Every object schema whose keys are feature names (it has patternProperties)."""
    if isinstance(node, dict):
        if "patternProperties" in node:
            yield node
        for value in node.values():
            yield from feature_maps(value)
    elif isinstance(node, list):
        for value in node:
            yield from feature_maps(value)


def test_every_feature_map_states_its_key_rule(gmlfm):
    maps = list(feature_maps(schema_of(gmlfm)))
    assert maps
    for node in maps:
        (pattern,) = node["patternProperties"]
        assert node["propertyNames"] == {"minLength": 1, "maxLength": 256, "pattern": pattern}
        assert node["maxProperties"] == 64


def test_operation_ids_are_tag_dash_name_and_unique(gmlfm):
    paths = schema_of(gmlfm)["paths"]
    ids = [op["operationId"] for ops in paths.values() for op in ops.values()]
    assert len(set(ids)) == len(ids)
    for path, ops in paths.items():
        for operation in ops.values():
            assert re.fullmatch(r"[a-z]+-[a-z_]+", operation["operationId"]), path
            assert operation["operationId"].startswith(operation["tags"][0] + "-")


def test_every_request_body_has_an_example(gmlfm):
    schema = schema_of(gmlfm)
    components = schema["components"]["schemas"]
    bodies = [op["requestBody"] for ops in schema["paths"].values() for op in ops.values()
              if "requestBody" in op]
    assert len(bodies) == 4  # score, recommend, a profile, interactions
    for body in bodies:
        ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert components[ref].get("examples"), ref
