"""PUT /users/{id}, POST /users/{id}/interactions, and read-your-writes under load."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

pytestmark = pytest.mark.anyio


async def test_a_new_user_has_an_empty_profile_until_its_profile_is_put(client):
    r = await client.get("/recommend/newcomer", params={"n": 5})
    assert r.status_code == 200 and r.json()["user_source"] == "unknown"
    empty = await client.post("/recommend", json={"user": {}, "n": 5})
    assert empty.json()["user_source"] == "anonymous"
    assert r.json()["items"] == empty.json()["items"]  # an id the model lacks adds nothing
    r = await client.put("/users/newcomer", json={"features": {"segment": "2"}})
    assert r.status_code == 200, r.text
    assert r.json()["features"] == {"segment": "2"} and r.json()["ignored"] == {}
    r = await client.get("/recommend/newcomer", params={"n": 5})
    assert r.status_code == 200 and r.json()["user_source"] == "stored"
    cold = await client.post("/recommend", json={"user": {"segment": "2"}, "n": 5})
    assert r.json()["items"] == cold.json()["items"]


async def test_a_put_profile_replaces_the_known_users_features(client):
    model = client.app.state.model_host.current
    own = model.training.profile(model.training.position("12"))["segment"]
    other = next(s for s in ("0", "1", "2") if s != own)
    items = {"item_ids": ["4", "40", "140"]}
    before = await client.post("/score", json={"user_id": "12", **items})
    want = await client.post("/score", json={"user_id": "12", "user": {"segment": other},
                                             **items})
    r = await client.put("/users/12", json={"features": {"segment": other}})
    assert r.status_code == 200
    after = await client.post("/score", json={"user_id": "12", **items})
    assert after.json()["scores"] == want.json()["scores"] != before.json()["scores"]


async def test_put_lists_unknown_values_and_refuses_unknown_fields(client):
    r = await client.put("/users/u1", json={"features": {"segment": "99"}})
    assert r.status_code == 200 and r.json()["ignored"] == {"segment": ["99"]}
    r = await client.put("/users/u1", json={"features": {"shoe_size": "44"}})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "features", "shoe_size"]


async def test_recorded_interactions_leave_later_recommendations(client):
    first = await client.get("/recommend/7", params={"n": 5})
    top = [i["item_id"] for i in first.json()["items"]]
    r = await client.post("/users/7/interactions", json={"item_ids": top[:2]})
    assert r.status_code == 200 and r.json()["recorded"] == 2
    after = await client.get("/recommend/7", params={"n": 3})
    assert [i["item_id"] for i in after.json()["items"]] == top[2:]
    kept = await client.get("/recommend/7", params={"n": 5, "exclude_seen": "false"})
    assert [i["item_id"] for i in kept.json()["items"]][:2] == top[:2]


async def test_interactions_name_unknown_items_and_users(client):
    r = await client.post("/users/7/interactions", json={"item_ids": ["3", "x1", "x2"]})
    assert r.status_code == 404 and r.json()["item_ids"] == ["x1", "x2"]
    r = await client.post("/users/ghost/interactions", json={"item_ids": ["3"]})
    assert r.status_code == 404 and r.json()["user_id"] == "ghost"


async def test_the_cached_state_is_written_with_a_ttl_and_profiles_without(client):
    await client.put("/users/ttl-user", json={"features": {"segment": "1"}})
    await client.post("/users/ttl-user/interactions", json={"item_ids": ["5"]})
    await client.get("/recommend/7")  # a miss: the bundle user's state is written
    store = client.app.state.store.store
    model = client.app.state.model_host.current
    for user in ("ttl-user", "7"):
        state_ttl = await ttl_of(store, store.keys.state(user, model.key))
        assert 0 < state_ttl <= client.app.state.settings.cache_ttl_s
    assert await ttl_of(store, store.keys.profile("ttl-user")) is None
    assert await ttl_of(store, store.keys.history("ttl-user")) is None


async def ttl_of(store, key: str) -> float | None:
    """Seconds left on a key; None for a key without a TTL (both stores)."""
    ttl = await store.client.ttl(key) if hasattr(store, "client") else store.ttl(key)
    assert ttl != -2, f"{key} is missing"
    return None if ttl == -1 else ttl


async def test_reads_see_every_put_that_returned_before_they_started(client):
    """200 concurrent score requests interleaved with 40 PUTs of distinct profiles: each
    answer must come from the profile of the last PUT that had returned when the request
    started, or of one that came later."""
    items = ["1", "50", "99", "150"]
    profiles = [{"user_id": str(k), "segment": str(k % 3)} for k in range(40)]
    expected = []
    for p in profiles:
        r = await client.post("/score", json={"user": p, "item_ids": items})
        expected.append(tuple(s["score"] for s in r.json()["scores"]))
    assert len(set(expected)) == len(profiles)  # every profile is recognisable by its scores
    await client.put("/users/rw", json={"features": profiles[0]})
    done: list[tuple[float, int]] = []  # (time the PUT returned, its profile)

    async def writer():
        for k in range(1, len(profiles)):
            r = await client.put("/users/rw", json={"features": profiles[k]})
            assert r.status_code == 200
            done.append((time.perf_counter(), k))
            await asyncio.sleep(0)

    async def reader():
        started = time.perf_counter()
        r = await client.post("/score", json={"user_id": "rw", "item_ids": items})
        assert r.status_code == 200, r.text
        seen = expected.index(tuple(s["score"] for s in r.json()["scores"]))
        floor = max([k for t, k in done if t < started], default=0)
        assert seen >= floor, f"read profile {seen} after PUT {floor} had returned"

    await asyncio.gather(writer(), *(reader() for _ in range(200)))
    final = await client.post("/score", json={"user_id": "rw", "item_ids": items})
    assert tuple(s["score"] for s in final.json()["scores"]) == expected[-1]
    np.testing.assert_array_equal(len(done), len(profiles) - 1)
