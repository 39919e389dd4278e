"""The online experiment over HTTP: recommendation ids, impressions and attributed
interactions counted per variant, several bundles side by side with a shadow, the split
shared by replicas, per-variant reload, GET /admin/experiment and the variant metrics."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from service.variants import assign
from tests.service.api.conftest import REDIS_URL, redis_is_up, serving, settings_for

pytestmark = pytest.mark.anyio
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def report_of(answer: dict) -> dict[str, dict]:
    return {v["name"]: v for v in answer["variants"]}


async def test_every_answer_has_its_own_recommendation_id_and_variant(client):
    answers = [(await client.get("/recommend/3", params={"n": 3})).json(),
               (await client.post("/recommend", json={"user_id": "3", "n": 3})).json(),
               (await client.post("/recommend", json={"user": {"segment": "1"}})).json()]
    ids = [a["recommendation_id"] for a in answers]
    assert all(HEX32.match(i) for i in ids) and len(set(ids)) == 3
    assert {a["variant"] for a in answers} == {"default"}


async def test_impressions_and_attributed_interactions_are_counted_per_variant(client):
    top = (await client.get("/recommend/3", params={"n": 4})).json()
    rid, items = top["recommendation_id"], [i["item_id"] for i in top["items"]]
    shown = await client.post("/users/3/impressions",
                              json={"recommendation_id": rid, "item_ids": items[:2] + ["zz"]})
    assert shown.status_code == 200, shown.text
    assert shown.json() == {"user_id": "3", "recommendation_id": rid, "variant": "default",
                            "first": True, "shown": 2}
    again = await client.post("/users/3/impressions",
                              json={"recommendation_id": rid, "item_ids": items[:1]})
    assert again.json()["first"] is False
    # another user's answer, and an id nobody was given: 404s that say why
    for user, given in (("4", rid), ("3", "0" * 32)):
        r = await client.post(f"/users/{user}/impressions",
                              json={"recommendation_id": given, "item_ids": items[:1]})
        assert r.status_code == 404 and "GMLREC_ATTRIBUTION_WINDOW" in r.json()["detail"]
    # an interaction naming the answer, with one of its items and one it never showed
    outside = next(str(i) for i in range(200) if str(i) not in items)
    r = await client.post("/users/3/interactions",
                          json={"item_ids": [items[1], outside], "recommendation_id": rid})
    assert r.status_code == 200, r.text
    # one naming no answer: credited to the most recent answer holding the item
    await client.post("/users/3/interactions", json={"item_ids": [items[2]]})
    (default,) = (await client.get("/admin/experiment")).json()["variants"]
    assert {k: default[k] for k in ("users", "answers", "impressions", "hits", "attributed")} \
        == {"users": 1, "answers": 1, "impressions": 1, "hits": 1, "attributed": 2}
    assert default["hit_rate"] == 1.0 and default["vs_control"] is None
    assert 0 < default["interval"]["low"] < 1 == default["interval"]["high"]


async def test_an_interaction_naming_an_id_of_no_answer_is_recorded_and_credits_nothing(
        client):
    top = (await client.get("/recommend/3", params={"n": 2})).json()
    item = top["items"][0]["item_id"]
    for named in ("r-42", "0" * 32):
        r = await client.post("/users/3/interactions",
                              json={"item_ids": [item], "recommendation_id": named})
        assert r.status_code == 200 and r.json()["recorded"] == 1
    (default,) = (await client.get("/admin/experiment")).json()["variants"]
    assert default["attributed"] == 0


def two_models(gmlfm, gmlfm_next, root: Path) -> Path:
    """A models folder with `rec` (gmlfm) and `alt` (another seed's bundle)."""
    models = root / "models"
    shutil.copytree(gmlfm.bundle, models / "rec" / gmlfm.version)
    shutil.copytree(gmlfm_next.bundle, models / "alt" / gmlfm_next.version)
    return models


VARIANTS = json.dumps([{"name": "control", "model": "rec", "share": 0.5},
                       {"name": "b", "model": "alt", "share": 0.5},
                       {"name": "s", "model": "alt", "shadow": True}])


@pytest.fixture(params=["memory", "redis"])
def small_store(request, redis_prefix) -> dict:
    if request.param == "memory":
        return {}
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    return {"redis_url": REDIS_URL, "redis_prefix": f"{redis_prefix}-exp",
            "redis_timeout_s": 2.0}


async def test_variants_serve_side_by_side_and_a_shadow_is_compared_never_served(
        gmlfm, gmlfm_next, tmp_path, small_store):
    settings = settings_for(two_models(gmlfm, gmlfm_next, tmp_path), variants=VARIANTS,
                            experiment="side-by-side", **small_store)
    version = {"control": gmlfm.version, "b": gmlfm_next.version}
    users = [str(u) for u in range(30)]
    async with serving(settings) as client:
        for user in users:
            top = (await client.get(f"/recommend/{user}", params={"n": 5})).json()
            expected = assign(settings.split, user, "side-by-side").name
            assert (top["variant"], top["model_version"]) == (expected, version[expected])
        await client.app.state.experiment.drain()
        report = report_of((await client.get("/admin/experiment")).json())
        metrics = (await client.get("/metrics")).text
    in_b = sum(assign(settings.split, u, "side-by-side").name == "b" for u in users)
    assert 0 < in_b < len(users)
    assert report["control"]["answers"] == report["control"]["users"] == len(users) - in_b
    assert report["b"]["answers"] == in_b and report["s"]["answers"] == 0
    assert report["s"]["shadow"] and report["s"]["shadow_answers"] == len(users)
    # the shadow serves b's model: it agrees with b's answers exactly, not with the control's
    overlap = report["s"]["mean_overlap"] * len(users)
    assert in_b <= overlap < len(users)
    for name in ("control", "b"):
        assert f'gmlrec_variant_answers_total{{variant="{name}"}}' in metrics
    assert 'gmlrec_variant_ranking_seconds_count{variant="s"}' in metrics
    assert 'gmlrec_shadow_overlap_count{variant="s"}' in metrics


async def test_the_control_is_tested_against_with_the_counts_of_every_replica(
        gmlfm, gmlfm_next, tmp_path, redis_prefix):
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    settings = settings_for(two_models(gmlfm, gmlfm_next, tmp_path), variants=VARIANTS,
                            experiment="replicas", redis_url=REDIS_URL,
                            redis_prefix=f"{redis_prefix}-rep", redis_timeout_s=2.0)
    async with serving(settings) as one, serving(settings) as two:
        for k, user in enumerate(str(u) for u in range(40)):
            first = (await (one if k % 2 else two).get(f"/recommend/{user}")).json()
            other = (await (two if k % 2 else one).get(f"/recommend/{user}")).json()
            assert first["variant"] == other["variant"]  # the same on every replica
            replica = one if k % 3 else two
            await replica.post(f"/users/{user}/impressions", json={
                "recommendation_id": first["recommendation_id"], "item_ids": ["1"]})
            if first["variant"] == "b":  # b's users click; the control's do not
                await replica.post(f"/users/{user}/interactions", json={
                    "item_ids": [first["items"][0]["item_id"]],
                    "recommendation_id": first["recommendation_id"]})
        report = report_of((await one.get("/admin/experiment")).json())
    control, b = report["control"], report["b"]
    assert control["answers"] + b["answers"] == 80
    assert control["impressions"] + b["impressions"] == 40
    assert (control["hits"], b["hits"]) == (0, b["impressions"])
    test = b["vs_control"]
    assert (test["n"], test["n_control"]) == (b["impressions"], control["impressions"])
    assert test["z"] > 0 and test["p_value"] < 0.001
    assert control["vs_control"] is None and report["s"]["vs_control"] is None


async def test_each_variant_reloads_its_own_model(gmlfm, gmlfm_next, tmp_path):
    models = two_models(gmlfm, gmlfm_next, tmp_path)
    settings = settings_for(models, variants=VARIANTS)
    b_user = next(str(u) for u in range(100) if assign(settings.split, str(u), "default").name
                  == "b")
    c_user = next(str(u) for u in range(100) if assign(settings.split, str(u), "default").name
                  == "control")
    async with serving(settings) as client:
        assert (await client.get(f"/recommend/{b_user}")).json()["model_version"] \
            == gmlfm_next.version
        # a newer version of b's model (its folder sorts last; its bundle is gmlfm's)
        shutil.copytree(gmlfm.bundle, models / "alt" / "29991231T235959Z-00000000")
        r = await client.post("/admin/reload")
        assert r.status_code == 200 and r.json()["changed"] is False  # the control's answer
        assert (await client.get(f"/recommend/{b_user}")).json()["model_version"] \
            == gmlfm.version
        assert (await client.get(f"/recommend/{c_user}")).json()["model_version"] \
            == gmlfm.version
        assert client.app.state.model_host.current.path.parent.name == "rec"  # not reloaded
        report = report_of((await client.get("/admin/experiment")).json())
    assert report["b"]["model_version"] == report["s"]["model_version"] == gmlfm.version
