"""Business filters on POST /recommend: the answer is the exact top n of the items that pass,
held to the trained torch model's own ranking of those items; unknown fields are 422s at
their place, unknown values and ids are listed under `ignored`."""

from __future__ import annotations

import numpy as np
import pytest

from service import union_top
from service.schemas import MAX_FILTER_IDS
from tests.service.api.conftest import serving, settings_for, user_who_did
from tests.service.api.reference import TorchModel, assert_same_ranking, brute_force_top

pytestmark = pytest.mark.anyio
USER = "7"


@pytest.fixture(scope="module")
def torch_model(gmlfm) -> TorchModel:
    return TorchModel(gmlfm)


def ranked(answer) -> list[tuple[str, float]]:
    return [(i["item_id"], i["score"]) for i in answer.json()["items"]]


def categories(client) -> dict[str, str]:
    """Each item's category (the synthetic data's item field)."""
    bundle = client.app.state.model_host.current.bundle
    return {str(bundle.catalog.ids[p]): bundle.catalog.details(p)["features"]["category"]
            for p in range(len(bundle.catalog))}


async def recommend(client, spec: dict, n: int = 10, exclude_seen: bool = True):
    r = await client.post("/recommend", json={"user_id": USER, "n": n, "filter": spec,
                                              "exclude_seen": exclude_seen})
    assert r.status_code == 200, r.text
    return r


@pytest.mark.parametrize("exclude_seen", [True, False])
async def test_each_filter_answers_the_exact_top_n_of_what_passes(client, torch_model,
                                                                  exclude_seen):
    category = categories(client)
    values = sorted(set(category.values()))
    ids = list(category)
    scores = torch_model.scores(USER)
    seen = torch_model.seen(USER) if exclude_seen else set()
    cases = [
        ({"include": {"category": [values[0]]}}, lambda i: category[i] == values[0]),
        ({"include": {"category": values[:2]}}, lambda i: category[i] in values[:2]),
        ({"exclude": {"category": [values[0]]}}, lambda i: category[i] != values[0]),
        ({"item_ids": ids[:7]}, lambda i: i in ids[:7]),
        ({"exclude_item_ids": ids[:50]}, lambda i: i not in ids[:50]),
        ({"include": {"category": [values[1]]}, "exclude_item_ids": ids[:30],
          "item_ids": ids[:120]}, lambda i: category[i] == values[1] and i in ids[30:120]),
    ]
    for spec, passes in cases:
        got = ranked(await recommend(client, spec, exclude_seen=exclude_seen))
        blocked = seen | {i for i in ids if not passes(i)}
        want = brute_force_top(scores, torch_model.item_ids, blocked, 10)
        assert len(got) == len(want), spec
        assert_same_ranking(got, want)


async def test_a_filter_few_items_pass_is_scored_directly_and_can_answer_fewer(client,
                                                                               monkeypatch):
    ids = list(categories(client))
    direct = []
    real = union_top.best_of
    monkeypatch.setattr(union_top, "best_of", lambda *a: direct.append(a[3]) or real(*a))
    got = ranked(await recommend(client, {"item_ids": ids[:3]}, exclude_seen=False))
    assert len(got) == 3 and {i for i, _ in got} == set(ids[:3])
    assert [len(c) for c in direct] == [3]  # three items scored, not the catalog
    assert ranked(await recommend(client, {"item_ids": ids[:3], "exclude_item_ids": ids[:3]})) \
        == []


async def test_unknown_fields_are_422s_and_unknown_values_are_ignored(client):
    for where in ("include", "exclude"):
        r = await client.post("/recommend", json={"user_id": USER,
                                                  "filter": {where: {"colour": ["red"]}}})
        assert r.status_code == 422
        assert r.json()["detail"][0]["loc"] == ["body", "filter", where, "colour"]
        r = await client.post("/recommend", json={"user_id": USER,
                                                  "filter": {where: {"segment": ["1"]}}})
        assert r.status_code == 422 and "not an item field" in r.json()["detail"][0]["msg"]
    r = await recommend(client, {"include": {"category": ["no-such"]},
                                 "exclude_item_ids": ["x1"], "item_ids": ["x2"]})
    assert r.json()["items"] == []
    assert r.json()["ignored"] == {"category": ["no-such"], "item_ids": ["x2"],
                                   "exclude_item_ids": ["x1"]}


async def test_too_many_ids_name_the_limit(client):
    ids = [str(i) for i in range(MAX_FILTER_IDS + 1)]
    r = await client.post("/recommend", json={"user_id": USER, "filter": {"item_ids": ids}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "filter",
                                                                     "item_ids"]
    assert str(MAX_FILTER_IDS) in r.json()["detail"][0]["msg"]


async def test_a_filter_keeps_to_the_history_moved_state(with_history):
    async with serving(settings_for(with_history.models_dir)) as client:
        model = client.app.state.model_host.current
        ids = [str(i) for i in model.catalog.ids[:40].tolist()]
        await user_who_did(client, "filtered", "1", ids[:2])
        r = await client.post("/recommend", json={"user_id": "filtered", "n": 5,
                                                  "filter": {"item_ids": ids[2:40]}})
        got = ranked(r)
        window = model.training.window(None, ids[:2])
        row = model.profiles.encode("filtered", {"segment": "1"}, window=window)
        state = model.scorer.reference.user_state(row.idx[None], row.val[None])[0]
        positions, _ = model.catalog.positions(ids[2:40])
        scores = model.scorer.reference.score(state[None], positions[None])[0]
        order = np.lexsort((positions, -scores))[:5]
        assert_same_ranking(got, [(ids[2 + k], float(scores[k])) for k in order])
