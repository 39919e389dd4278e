"""A model with a history field (`--history N`) served: what a user just did moves its next
recommendation at once, on every store, and the window the service builds is the one
training and export build."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from bundle.reference import top_n_of
from service import state_blob
from tests.service.api.conftest import HISTORY_N as N
from tests.service.api.conftest import serving, settings_for, user_who_did
from tests.service.api.reference import assert_same_ranking

pytestmark = pytest.mark.anyio


def brute_force(model, user_id: str, profile: dict, window: list[str], n: int):
    """The top n over the whole catalog from the state recomputed from the profile and the
    window, by the numpy reference."""
    row = model.profiles.encode(user_id, profile, window=window)
    state = model.scorer.reference.user_state(row.idx[None], row.val[None])
    scores = model.scorer.reference.catalog_scores(state)
    positions, best = top_n_of(scores, n)
    return [(str(model.catalog.ids[p]), float(s)) for p, s in zip(positions[0], best[0])]


def ranked(answer) -> list[tuple[str, float]]:
    return [(i["item_id"], i["score"]) for i in answer.json()["items"]]


async def test_one_interaction_moves_a_new_users_recommendations(with_history, store):
    async with serving(settings_for(with_history.models_dir, **store)) as client:
        model = client.app.state.model_host.current
        assert (await client.put("/users/newbie", json={"features": {"segment": "1"}})
                ).status_code == 200
        whole = {"n": 10, "exclude_seen": "false"}
        before = await client.get("/recommend/newbie", params=whole)
        item = before.json()["items"][0]["item_id"]
        assert (await client.post("/users/newbie/interactions", json={"item_ids": [item]})
                ).status_code == 200
        after = await client.get("/recommend/newbie", params=whole)
        assert ranked(after) != ranked(before)  # the state moved, not just a hidden item
        assert_same_ranking(ranked(after),
                            brute_force(model, "newbie", {"segment": "1"}, [item], 10))
        user = (await client.get("/users/newbie")).json()
        assert user["history"] == [item]

        # a PUT replaces the profile and keeps the history
        assert (await client.put("/users/newbie", json={"features": {"segment": "2"}})
                ).status_code == 200
        assert (await client.get("/users/newbie")).json()["history"] == [item]
        again = await client.get("/recommend/newbie", params=whole)
        assert_same_ranking(ranked(again),
                            brute_force(model, "newbie", {"segment": "2"}, [item], 10))


def history_writes(result: str) -> float:
    return REGISTRY.get_sample_value("gmlrec_history_writes_total", {"result": result}) or 0.0


async def test_a_thousand_interactions_move_the_state_as_a_recompute_would(with_history,
                                                                         store):
    """1,000 writes of one or two items out of twelve (so the window evicts and items come
    back): the state they leave in the store, tagged with the final window (so no read
    rebuilt it), equals the state recomputed from the profile and the stored history, 1e-5
    relative; and every write but the first moved it rather than building it."""
    async with serving(settings_for(with_history.models_dir, **store)) as client:
        model = client.app.state.model_host.current
        items = [str(i) for i in model.catalog.ids[:12].tolist()]
        profile = {"segment": "1"}
        assert (await client.put("/users/busy", json={"features": profile})).status_code == 200
        moved, rebuilt = history_writes("moved"), history_writes("rebuilt")
        rng = np.random.default_rng(1)
        for _ in range(1000):
            batch = rng.choice(items, size=int(rng.integers(1, 3))).tolist()
            r = await client.post("/users/busy/interactions", json={"item_ids": batch})
            assert r.status_code == 200, r.text
        assert history_writes("rebuilt") - rebuilt == 1  # the first: no state yet
        assert history_writes("moved") - moved == 999
        stored = await client.app.state.store.read("busy", model.key, history=True)
        window = model.training.window(None, stored.history)
        assert len(window) == N
        tag = state_blob.profile_tag(state_blob.canonical_profile(profile), window)
        cached = state_blob.unpack(stored.state, tag, model.state_size, model.sums_size)
        assert cached is not None
        row = model.profiles.encode("busy", profile, window=window)
        recomputed = model.scorer.reference.user_state(row.idx[None], row.val[None])[0]
        np.testing.assert_allclose(cached[0], recomputed, rtol=1e-5,
                                   atol=1e-5 * max(1.0, np.abs(recomputed).max()))


async def test_the_window_holds_the_last_n_distinct_interactions(with_history):
    async with serving(settings_for(with_history.models_dir)) as client:
        model = client.app.state.model_host.current
        items = [str(i) for i in model.catalog.ids[:8].tolist()]
        await user_who_did(client, "reader", "0", items[:6], [items[1], items[7]])
        window = [items[3], items[4], items[5], items[1], items[7]]  # items[1] moved last
        got = await client.get("/recommend/reader", params={"n": 10, "exclude_seen": "false"})
        assert_same_ranking(ranked(got), brute_force(model, "reader", {"segment": "0"},
                                                     window, 10))


async def test_a_training_users_window_is_the_one_export_wrote(with_history):
    async with serving(settings_for(with_history.models_dir)) as client:
        model = client.app.state.model_host.current
        for user in ("0", "17", "59"):
            position = model.training.position(user)
            window = model.training.window(position, [])
            assert 0 < len(window) <= N
            row = model.profiles.encode(user, model.training.profile(position), window=window)
            idx, val = model.bundle.users.row(position)
            np.testing.assert_array_equal(row.idx, idx)
            np.testing.assert_allclose(row.val, val, rtol=1e-6)


async def test_history_is_not_a_profile_field(with_history):
    async with serving(settings_for(with_history.models_dir)) as client:
        r = await client.put("/users/x", json={"features": {"history": ["1"]}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == [
            "body", "features", "history"]
        fields = (await client.get("/model")).json()["user_fields"]
        assert "history" not in fields
