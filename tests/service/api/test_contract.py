"""The published schema is what the API accepts: strict bodies (no silent coercion), every
key rule in the schema, the served model's feature fields in it, operation ids a generated
client can name methods after, and an example for every request body."""

from __future__ import annotations

import copy
import re

import pytest

from service import error_responses
from service.app import create_app
from service.schemas import ITEM_KEYS, MAX_DISPLAY
from tests.service.api.conftest import serving, settings_for
from tests.service.api.schema_check import body_problems

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/score", {"user_id": "0", "item_ids": ["1"], "details": 0}, "details"),
    ("/score", {"user_id": "0", "item_ids": ["1"], "details": "true"}, "details"),
    ("/recommend", {"user_id": "0", "n": "5"}, "n"),
    ("/recommend", {"user_id": "0", "n": 5.5}, "n"),
    ("/recommend", {"user_id": "0", "exclude_seen": 1}, "exclude_seen"),
    ("/recommend", {"user_id": 0}, "user_id"),
])
async def test_bodies_are_strict_a_value_of_another_type_is_a_422(client, path, body, field):
    r = await client.post(path, json=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", field], r.text
    fixed = {**body, field: {"details": True, "n": 5, "exclude_seen": False,
                             "user_id": "0"}[field]}
    assert (await client.post(path, json=fixed)).status_code == 200


async def test_a_whole_number_written_with_a_fraction_is_the_integer_json_schema_says(client):
    """5.0 is the JSON number 5, which `"type": "integer"` admits: taken as 5, in `n` and in
    feature values (read as their decimal text, "1")."""
    r = await client.post("/recommend", json={"user": {"segment": 1.0}, "n": 3.0})
    assert r.status_code == 200 and len(r.json()["items"]) == 3
    again = (await client.post("/recommend", json={"user": {"segment": "1"}, "n": 3})).json()
    assert r.json()["recommendation_id"] != again.pop("recommendation_id")  # each answer's own
    assert {k: v for k, v in r.json().items() if k != "recommendation_id"} == again


async def test_query_parameters_still_read_their_text(client):
    r = await client.get("/recommend/0", params={"n": "3", "exclude_seen": "false"})
    assert r.status_code == 200 and len(r.json()["items"]) == 3


def schema_of(gmlfm) -> dict:
    return create_app(settings_for(gmlfm.models_dir)).openapi()


def feature_maps(node):
    """Every object schema whose keys are names (it has patternProperties): feature maps, and
    an added item's display attributes."""
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
        rule = {"minLength": 1, "maxLength": 256, "pattern": pattern}
        if node["maxProperties"] == MAX_DISPLAY:  # display names: never an answer's own key
            rule["not"] = {"enum": list(ITEM_KEYS)}
        else:
            assert node["maxProperties"] == 64
        assert node["propertyNames"] == rule


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
    assert len(bodies) == 7  # score, recommend, similar items, a profile, interactions,
    # impressions, an item
    for body in bodies:
        ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert components[ref].get("examples"), ref


def map_of(node: dict) -> dict:
    """The object form of a feature map's schema (it may be nullable)."""
    (form,) = [n for n in node.get("anyOf", [node]) if n.get("type") == "object"]
    return form


@pytest.mark.parametrize("trained", ["gmlfm", "with_history"])
async def test_while_a_model_serves_its_feature_maps_take_its_fields_only(trained, request):
    """Each feature map names the served model's fields and no other, each with room for as
    many values as the model takes (a history field is not one: interactions make it); a
    body the schema admits is answered, one naming another field is a 422, and the examples
    are bodies the schema admits."""
    bundle = request.getfixturevalue(trained)
    async with serving(settings_for(bundle.models_dir)) as client:
        schema = (await client.get("/openapi.json")).json()
        model = client.app.state.model_host.current
        bodies = schema["components"]["schemas"]
        user = map_of(bodies["ProfileRequest"]["properties"]["features"])
        assert user["propertyNames"]["enum"] == list(model.profiles.user_fields)
        assert user["additionalProperties"] is False and "patternProperties" not in user
        assert model.profiles.history is None or \
            model.profiles.history.field not in user["properties"]
        for field, rule in user["properties"].items():
            (many,) = [f for f in rule["anyOf"] if f.get("type") == "array"]
            assert many["maxItems"] == model.bundle.user_columns.count(field) == 1
        untitled = {k: v for k, v in user.items() if k != "title"}  # ProfileRequest's own
        for body, key in [("ScoreRequest", "user"), ("ScoreRequest", "context"),
                          ("RecommendRequest", "user"), ("RecommendRequest", "context")]:
            assert map_of(bodies[body]["properties"][key]) == untitled, (body, key)
        include = map_of(bodies["ItemFilter"]["properties"]["include"])
        assert include["propertyNames"]["enum"] == ["item_id", "category"]
        assert map_of(bodies["ItemFilter"]["properties"]["exclude"]) == include

        assert (await client.put("/users/u1", json={"features": {
            field: "1" for field in user["properties"]}})).status_code == 200
        for wrong in [{"category": "1"}, {"segment": ["1", "2"]}]:  # an item field; two values
            r = await client.put("/users/u1", json={"features": wrong})
            assert r.status_code == 422, r.text
            assert body_problems(schema, bodies["ProfileRequest"], {"features": wrong})
        r = await client.post("/recommend", json={"user_id": "0", "filter": {
            "include": {"segment": ["1"]}}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "segment"
        for name, body in bodies.items():
            for example in body.get("examples", []):
                assert body_problems(schema, body, example) == [], (name, example)


async def test_an_app_serving_no_model_publishes_the_general_rule(gmlfm, tmp_path):
    """No model loaded (an empty models folder): the feature maps take any printable names,
    as test_every_feature_map_states_its_key_rule checks; the fitted schema is only ever the
    served model's."""
    async with serving(settings_for(tmp_path)) as client:
        assert client.app.state.model_host.current is None
        published = (await client.get("/openapi.json")).json()
    assert published == schema_of(gmlfm)


def test_building_schemas_leaves_the_declared_error_entries_as_they_were(gmlfm):
    """FastAPI 0.121 writes into the `responses=` entries routes declare, and a second schema
    then listed a 404's models twice over (service/error_responses.py's _Entry): two apps' schemas
    are the same, and the shared entries stay as declared."""
    before = copy.deepcopy(dict(error_responses.NO_USER_OR_ITEMS[404]))
    assert schema_of(gmlfm) == schema_of(gmlfm)
    assert dict(error_responses.NO_USER_OR_ITEMS[404]) == before
