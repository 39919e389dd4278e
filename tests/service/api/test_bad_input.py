"""Bad input is a 4xx that names the problem, never a 500."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.anyio


def named(r, *loc) -> bool:
    """A 422 whose detail points at `loc` (a prefix of one error's location)."""
    return r.status_code == 422 and any(
        e["loc"][:len(loc)] == list(loc) for e in r.json()["detail"])


async def test_malformed_json(client):
    r = await client.post("/score", content=b'{"user_id": "7", "item_ids": [',
                          headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(("body", "loc"), [
    ({"user_id": 7, "item_ids": ["1"]}, ("body", "user_id")),
    ({"user_id": "7", "item_ids": "1"}, ("body", "item_ids")),
    ({"user_id": "7", "item_ids": []}, ("body", "item_ids")),
    ({"user_id": "7", "item_ids": [1.5]}, ("body", "item_ids", 0)),
    ({"user_id": "", "item_ids": ["1"]}, ("body", "user_id")),
    ({"user_id": "7", "item_ids": [""]}, ("body", "item_ids", 0)),
    ({"user_id": "7", "item_ids": ["1"], "colour": "red"}, ("body", "colour")),
    ({"item_ids": ["1"]}, ("body",)),
    ({"user": {"segment": {"nested": 1}}, "item_ids": ["1"]}, ("body", "user", "segment")),
    ({"user": {"segment": ""}, "item_ids": ["1"]}, ("body", "user", "segment")),
    ({"user": {"": "1"}, "item_ids": ["1"]}, ("body", "user")),
    ({"user_id": "7", "item_ids": ["1\x00"]}, ("body", "item_ids", 0)),
    ({"user_id": "7" * 300, "item_ids": ["1"]}, ("body", "user_id")),
    ({"user_id": "7", "item_ids": [str(i) for i in range(10_000)]}, ("body", "item_ids")),
])
async def test_score_bodies_are_422s_naming_the_field(client, body, loc):
    assert named(await client.post("/score", json=body), *loc)


async def test_a_lone_surrogate_is_a_422(client):
    raw = b'{"user_id": "\\ud800", "item_ids": ["1"]}'
    r = await client.post("/score", content=raw, headers={"content-type": "application/json"})
    assert named(r, "body", "user_id")


@pytest.mark.parametrize("n", ["0", "-3", "1001", "99999999999999999999", "ten", "1.5"])
async def test_n_out_of_range_is_a_422(client, n):
    assert named(await client.get("/recommend/7", params={"n": n}), "query", "n")
    r = await client.post("/recommend", json={"user_id": "7", "n": n})
    assert r.status_code == 422


async def test_unknown_feature_fields_are_422s(client):
    r = await client.post("/recommend", json={"user": {"shoe_size": "44"}})
    assert named(r, "body", "user", "shoe_size") and "shoe_size" in r.text
    r = await client.post("/score", json={"user_id": "7", "context": {"weather": "rain"},
                                          "item_ids": ["1"]})
    assert named(r, "body", "context", "weather")
    r = await client.post("/score", json={"user": {"segment": ["0", "1"]}, "item_ids": ["1"]})
    assert named(r, "body", "user", "segment")  # one value at most for a categorical field
    r = await client.post("/score", json={"user": {"category": "1"}, "item_ids": ["1"]})
    assert named(r, "body", "user", "category")  # an item field is no user feature


async def test_unknown_ids_are_404s_naming_them(client):
    r = await client.post("/score", json={"user_id": "7", "item_ids": ["1", "no-such", "1x"]})
    assert r.status_code == 404 and r.json()["item_ids"] == ["no-such", "1x"]
    assert "no-such" in r.json()["detail"]
    r = await client.post("/users/nobody-here/interactions", json={"item_ids": ["1"]})
    assert r.status_code == 404 and r.json()["user_id"] == "nobody-here"
    r = await client.get("/items/ünïcödé ✓")
    assert r.status_code == 404 and r.json()["item_ids"] == ["ünïcödé ✓"]


@pytest.mark.parametrize("user", ["ünïcödé ✓", "😀" * 5, "a b", "{user:7}", "x%7By", "é:é",
                                  "a?b#c"])
async def test_odd_unicode_ids_round_trip(client, user):
    path = quote(user, safe="")
    r = await client.put(f"/users/{path}", json={"features": {"segment": "1"}})
    assert r.status_code == 200 and r.json()["user_id"] == user
    r = await client.get(f"/recommend/{path}", params={"n": 2})
    assert r.status_code == 200 and r.json()["user_id"] == user


async def test_keys_of_tricky_ids_stay_apart(client):
    """`{`, `}` and `:` in ids are escaped: no id can reach another user's keys."""
    await client.put("/users/a", json={"features": {"segment": "0"}})
    await client.put("/users/a}:profile", json={"features": {"segment": "2"}})
    one = await client.post("/score", json={"user_id": "a", "item_ids": ["1"]})
    cold = await client.post("/score", json={"user": {"segment": "0"}, "item_ids": ["1"]})
    assert one.json()["scores"] == cold.json()["scores"]


async def test_oversized_bodies_are_413s(client):
    limit = client.app.state.settings.max_body_bytes
    big = json.dumps({"user_id": "7", "item_ids": ["1"], "pad": "x" * limit}).encode()
    r = await client.post("/score", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and str(limit) in r.json()["detail"]

    async def chunks():  # no Content-Length: the limit is enforced while reading
        for start in range(0, len(big), 65536):
            yield big[start:start + 65536]
    r = await client.post("/score", content=chunks(),
                          headers={"content-type": "application/json"})
    assert r.status_code == 413


async def test_wrong_methods_and_paths(client):
    assert (await client.delete("/score")).status_code == 405
    assert (await client.get("/nowhere")).status_code == 404
    assert (await client.get("/recommend/")).status_code == 404
    assert (await client.put("/users/a/b", json={"features": {}})).status_code == 404


async def test_request_ids_go_in_and_out(client):
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    made = (await client.get("/health")).headers["x-request-id"]
    assert len(made) == 32
    bad = (await client.get("/health", headers={"X-Request-ID": "no spaces\tplease"}))
    assert bad.headers["x-request-id"] != "no spaces\tplease"
