"""POST /score, GET and POST /recommend over HTTP, held to the trained torch model."""

from __future__ import annotations

import numpy as np
import pytest

from tests.service.api.reference import TorchModel, assert_same_ranking, brute_force_top

pytestmark = pytest.mark.anyio
USERS = ["0", "7", "31", "59"]


@pytest.fixture(scope="module")
def torch_model(gmlfm) -> TorchModel:
    return TorchModel(gmlfm)


async def test_score_equals_the_trained_model(client, torch_model):
    for user in USERS:
        items = torch_model.item_ids
        r = await client.post("/score", json={"user_id": user, "item_ids": items})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [s["item_id"] for s in body["scores"]] == items  # request order
        got = np.array([s["score"] for s in body["scores"]])
        want = torch_model.scores(user)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
        assert body["model_version"] == client.app.state.model_host.current.version


async def test_score_keeps_request_order_and_repeats(client, torch_model):
    items = ["17", "3", "17", "150"]
    r = await client.post("/score", json={"user_id": "7", "item_ids": items})
    scores = {i: s for i, s in zip(torch_model.item_ids, torch_model.scores("7"))}
    assert [s["item_id"] for s in r.json()["scores"]] == items
    np.testing.assert_allclose([s["score"] for s in r.json()["scores"]],
                               [scores[i] for i in items], rtol=1e-4, atol=1e-6)


async def test_recommend_is_the_brute_force_ranking_of_every_unseen_item(client, torch_model):
    for user in USERS:
        r = await client.get(f"/recommend/{user}", params={"n": 25})
        assert r.status_code == 200, r.text
        got = [(i["item_id"], i["score"]) for i in r.json()["items"]]
        want = brute_force_top(torch_model.scores(user), torch_model.item_ids,
                               torch_model.seen(user), 25)
        assert_same_ranking(got, want)


async def test_exclude_seen_false_ranks_the_whole_catalog(client, torch_model):
    r = await client.get("/recommend/31", params={"n": 10, "exclude_seen": "false"})
    want = brute_force_top(torch_model.scores("31"), torch_model.item_ids, set(), 10)
    assert_same_ranking([(i["item_id"], i["score"]) for i in r.json()["items"]], want)


async def test_n_beyond_the_unseen_items_returns_them_all(client, torch_model):
    r = await client.get("/recommend/0", params={"n": 1000})
    unseen = len(torch_model.item_ids) - len(torch_model.seen("0"))
    assert len(r.json()["items"]) == unseen


async def test_a_cold_user_is_scored_from_features_alone(client):
    cold = {"user": {"segment": "1"}, "n": 5}
    r = await client.post("/recommend", json=cold)
    assert r.status_code == 200, r.text
    top = [i["item_id"] for i in r.json()["items"]]
    scored = await client.post("/score", json={"user": {"segment": "1"}, "item_ids": top})
    got = [s["score"] for s in scored.json()["scores"]]
    assert got == sorted(got, reverse=True)
    np.testing.assert_allclose(got, [i["score"] for i in r.json()["items"]], rtol=1e-6)


async def test_overrides_change_a_known_users_features(client):
    model = client.app.state.model_host.current
    own = model.training.profile(model.training.position("7"))["segment"]
    other = next(s for s in ("0", "1", "2") if s != own)
    items = ["1", "2"]
    base = await client.post("/score", json={"user_id": "7", "item_ids": items})
    same = await client.post("/score", json={"user_id": "7", "user": {"segment": own},
                                             "item_ids": items})
    moved = await client.post("/score", json={"user_id": "7", "user": {"segment": other},
                                              "item_ids": items})
    assert same.json()["scores"] == base.json()["scores"]
    assert moved.json()["scores"] != base.json()["scores"]


async def test_unknown_values_are_ignored_and_listed(client):
    r = await client.post("/recommend", json={"user": {"segment": ["1"], "user_id": "nobody"},
                                              "n": 3})
    assert r.status_code == 200, r.text
    assert r.json()["ignored"] == {"user_id": ["nobody"]}
    plain = await client.post("/recommend", json={"user": {"segment": "1"}, "n": 3})
    assert plain.json()["items"] == r.json()["items"]  # an unknown value adds nothing


async def test_details_add_display_attributes(client):
    r = await client.get("/recommend/7", params={"n": 3, "details": "true"})
    model = client.app.state.model_host.current
    for item in r.json()["items"]:
        position = model.catalog.positions([item["item_id"]])[0][0]
        shown = {k: item[k] for k in model.catalog.display_names}
        assert shown == model.catalog.display(position, every=True)
