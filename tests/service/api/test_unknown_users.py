"""A user id with no profile (GMLREC_UNKNOWN_USERS): `cold`, the default, answers /recommend and
/score from an empty profile (the model's item-side terms alone), marked `user_source:
unknown`, and caches nothing for it; `reject` keeps the 404. Either way a profile is needed
to record interactions or to read one, and an unknown id while the store is down is a 503
(the store might hold its profile). Every answer names where its user came from."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bundle import top_n_of
from service.settings import Settings
from tests.service.api.conftest import serving, settings_for
from tests.service.api.reference import assert_same_ranking
from tests.support.servers import free_port

pytestmark = pytest.mark.anyio


def empty_profile_top(model, user_id: str, n: int) -> list[tuple[str, float]]:
    """Brute force from an empty profile (and the id, which the model lacks)."""
    row = model.profiles.encode(user_id, {})
    state = model.scorer.reference.user_state(row.idx[None], row.val[None])
    positions, scores = top_n_of(model.scorer.reference.catalog_scores(state), n)
    return [(str(model.catalog.ids[p]), float(s)) for p, s in zip(positions[0], scores[0])]


def ranked(answer) -> list[tuple[str, float]]:
    assert answer.status_code == 200, answer.text
    return [(i["item_id"], i["score"]) for i in answer.json()["items"]]


async def test_an_unknown_user_is_answered_from_an_empty_profile(client):
    model = client.app.state.model_host.current
    r = await client.get("/recommend/visitor-1", params={"n": 10})
    assert r.json()["user_source"] == "unknown" and r.json()["user_id"] == "visitor-1"
    assert_same_ranking(ranked(r), empty_profile_top(model, "visitor-1", 10), 1e-5)
    # every unknown id has the same state, that of no features at all
    posted = await client.post("/recommend", json={"user_id": "visitor-2", "n": 10})
    anonymous = await client.post("/recommend", json={"user": {}, "n": 10})
    assert ranked(posted) == ranked(r) == ranked(anonymous)
    assert anonymous.json()["user_source"] == "anonymous"
    items = [i for i, _ in ranked(r)[:3]]
    scored = await client.post("/score", json={"user_id": "visitor-1", "item_ids": items})
    assert scored.json()["user_source"] == "unknown"
    assert [s["score"] for s in scored.json()["scores"]] == [s for _, s in ranked(r)[:3]]
    # nothing is kept for it: a crawler's ids would fill the store
    assert (await client.app.state.store.read("visitor-1", model.key)).state is None
    # reading or writing about a user still needs its profile
    assert (await client.get("/users/visitor-1")).status_code == 404
    r = await client.post("/users/visitor-1/interactions", json={"item_ids": items[:1]})
    assert r.status_code == 404 and r.json()["user_id"] == "visitor-1"


async def test_every_answer_names_where_its_user_came_from(client):
    item = {"item_ids": ["1"]}
    sources = {"7": "training", "visitor": "unknown"}
    for user, source in sources.items():
        assert (await client.get(f"/recommend/{user}")).json()["user_source"] == source
        assert (await client.post("/score", json={"user_id": user, **item})
                ).json()["user_source"] == source
    assert (await client.put("/users/visitor", json={"features": {"segment": "1"}})
            ).status_code == 200
    assert (await client.get("/recommend/visitor")).json()["user_source"] == "stored"
    assert (await client.post("/recommend", json={"user_id": "7", "user": {"segment": "1"}})
            ).json()["user_source"] == "training"  # overrides of a training user's profile
    assert (await client.post("/score", json={"user": {"segment": "1"}, **item})
            ).json()["user_source"] == "anonymous"


async def test_reject_keeps_the_404(gmlfm):
    async with serving(settings_for(gmlfm.models_dir, unknown_users="reject")) as client:
        for r in (await client.get("/recommend/visitor"),
                  await client.post("/recommend", json={"user_id": "visitor"}),
                  await client.post("/score", json={"user_id": "visitor", "item_ids": ["1"]})):
            assert r.status_code == 404 and r.json()["user_id"] == "visitor"
            assert "PUT /users/{user_id}" in r.json()["detail"]
        assert (await client.get("/recommend/7")).json()["user_source"] == "training"


async def test_an_unknown_user_while_the_store_is_down_is_a_503(gmlfm):
    down = f"redis://127.0.0.1:{free_port()}/0"
    async with serving(settings_for(gmlfm.models_dir, redis_url=down, redis_timeout_s=0.2,
                                    redis_cooldown_s=0.2)) as client:
        r = await client.get("/recommend/visitor")
        assert r.status_code == 503 and r.headers["retry-after"]
        r = await client.get("/recommend/7")  # a training user: from the bundle
        assert r.status_code == 200 and r.json()["user_source"] == "training"
        assert r.headers["x-degraded"]


async def test_an_unknown_user_of_a_history_model_has_an_empty_window(with_history):
    async with serving(settings_for(with_history.models_dir)) as client:
        model = client.app.state.model_host.current
        r = await client.get("/recommend/visitor", params={"n": 10})
        assert r.json()["user_source"] == "unknown"
        assert_same_ranking(ranked(r), empty_profile_top(model, "visitor", 10), 1e-5)


def test_the_setting_takes_cold_or_reject():
    assert Settings().unknown_users == "cold"
    assert Settings(unknown_users="REJECT").unknown_users == "reject"
    with pytest.raises(ValidationError, match="unknown_users"):
        Settings(unknown_users="guess")
