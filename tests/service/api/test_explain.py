"""explain=true over HTTP: every explained item's terms add up to the score the answer gives
(GET and POST /recommend, POST /score; a known user, with its recorded history, overrides,
context, an anonymous one, an added item), on the in-process store and on Redis (a state
read from the cache explains as one just built); an answer without it is the same text as
before; a model whose score is no sum of terms says so and invents no reasons."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import numpy as np
import pytest

from tests.export.helpers import export, random_model
from tests.export.test_export_cli import _libfm_folder as libfm_folder
from tests.service.api.conftest import REDIS_URL, fit_and_export, serving, settings_for
from training.data.protocols import make_split
from training.data.specs import load_data

pytestmark = pytest.mark.anyio
RELATIVE = 1e-5


def check_explained(items: list[dict]) -> None:
    """Each item's explanation: its parts add up to its float64 score, which is the item's
    served score within RELATIVE; groups and terms sorted by magnitude; reasons in words."""
    for item in items:
        e = item["explanation"]
        assert e["available"] is True, e
        parts = e["global_bias"] + e["user"]["value"] + e["item"]["value"] \
            + sum(g["value"] for g in e["fields"])
        assert abs(parts - e["score"]) <= 1e-9 * max(1.0, abs(e["score"]))
        assert abs(e["score"] - item["score"]) <= RELATIVE * max(abs(item["score"]), 1e-6)
        sizes = [abs(g["value"]) for g in e["fields"]]
        assert sizes == sorted(sizes, reverse=True)
        for group in e["fields"]:
            assert np.isclose(group["value"], sum(t["value"] for t in group["terms"]))
            for term in group["terms"]:
                assert np.isclose(term["value"], sum(p["value"] for p in term["pairs"]))
        # the reasons are the largest positive contributions, in words
        said = sorted([(t["value"], t["text"]) for g in e["fields"] for t in g["terms"]]
                      + [(e["item"]["value"], "popular overall")], reverse=True)
        assert e["reasons"] == [text for value, text in said[:3] if value > 0]


@pytest.fixture(scope="module")
def with_context(tmp_path_factory) -> Path:
    """The models folder of a TransFM on libFM lines of (user, item, context), the context
    column after the item's (random weights: every term moves the score)."""
    root = tmp_path_factory.mktemp("context")
    data = load_data(f"libfm:{libfm_folder(root)}",
                     libfm_fields="field0:user,field1:item,field2")
    split = make_split(data, "rating", seed=0)
    export(random_model(data, split, "transfm"), data, split, root / "models", name="rec")
    return root / "models"


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    return fit_and_export(tmp_path_factory.mktemp("deep"), "deepfm", 0)


@pytest.fixture(params=["memory", "redis"])
def store(request) -> dict:
    if request.param == "memory":
        return {}
    return {"redis_url": REDIS_URL, "redis_prefix": f"test-explain-{uuid.uuid4().hex[:8]}",
            "redis_timeout_s": 2.0}


def unnamed(content: bytes) -> bytes:
    """An answer's bytes less its recommendation_id, new on every answer."""
    return re.sub(rb'"recommendation_id":"[0-9a-f]{32}"', b"", content)


async def test_a_known_users_history_explains_its_recommendations(with_history, store):
    async with serving(settings_for(with_history.models_dir, **store)) as client:
        r = await client.post("/users/0/interactions", json={"item_ids": ["5", "17"]})
        assert r.status_code == 200, r.text
        for _ in range(2):  # built, then read from the cache
            plain = await client.get("/recommend/0", params={"n": 5})
            off = await client.get("/recommend/0", params={"n": 5, "explain": "false"})
            on = await client.get("/recommend/0", params={"n": 5, "explain": "true"})
            assert plain.status_code == on.status_code == 200, on.text
            assert b"explanation" not in plain.content
            assert unnamed(plain.content) == unnamed(off.content)  # to the byte, id aside
            assert [(i["item_id"], i["score"]) for i in plain.json()["items"]] == \
                [(i["item_id"], i["score"]) for i in on.json()["items"]]
            check_explained(on.json()["items"])
        e = on.json()["items"][0]["explanation"]
        history = [g for g in e["fields"] if g["side"] == "history"]
        assert len(history) == 1
        window = {t["feature"].split("=", 1)[1] for t in history[0]["terms"]}
        assert {"5", "17"} <= window  # the recorded items are in its window
        texts = {t["text"] for t in history[0]["terms"]}
        assert "because you chose 5" in texts  # synthetic items have no titles
        term = history[0]["terms"][0]  # a weighted GML-FM: each pair's weight and distance
        for pair in term["pairs"]:  # item columns here are categorical: x_l = 1
            assert np.isclose(pair["value"], term["x"] * pair["weight"] * pair["distance"])


async def test_posts_explain_overrides_anonymous_users_and_added_items(with_history):
    async with serving(settings_for(with_history.models_dir)) as client:
        put = await client.put("/items/new-1", json={"features": {"category": ["1"]}})
        assert put.status_code == 200, put.text
        for who in ({"user_id": "3", "user": {"segment": "1"}}, {"user": {"segment": "2"}}):
            r = await client.post("/recommend", json={**who, "n": 4, "explain": True,
                                                      "filter": {"item_ids": ["new-1", "7"]}})
            assert r.status_code == 200, r.text
            assert {i["item_id"] for i in r.json()["items"]} == {"new-1", "7"}
            check_explained(r.json()["items"])
            r = await client.post("/score", json={**who, "item_ids": ["new-1", "7", "9"],
                                                  "explain": True})
            assert r.status_code == 200, r.text
            check_explained(r.json()["scores"])
            plain = await client.post("/score", json={**who, "item_ids": ["new-1", "7", "9"]})
            assert [s["score"] for s in plain.json()["scores"]] == \
                [s["score"] for s in r.json()["scores"]]
            assert [set(s) for s in plain.json()["scores"]] == [{"item_id", "score"}] * 3, \
                plain.json()


async def test_context_is_a_group_of_its_own(with_context):
    async with serving(settings_for(with_context)) as client:
        r = await client.post("/recommend", json={"user_id": "1", "context": {"field2": "9"},
                                                  "n": 3, "explain": True, "exclude_seen": False})
        assert r.status_code == 200, r.text
        check_explained(r.json()["items"])
        sides = {g["field"]: g["side"] for g in r.json()["items"][0]["explanation"]["fields"]}
        assert sides == {"field0": "user", "field2": "context"}
        words = [t["text"] for g in r.json()["items"][0]["explanation"]["fields"]
                 for t in g["terms"]]
        assert words == ["close to your own taste", "suits field2: 9"] \
            or words == ["suits field2: 9", "close to your own taste"]


async def test_a_deep_model_says_it_has_no_decomposition(deep):
    async with serving(settings_for(deep.models_dir)) as client:
        r = await client.get("/recommend/0", params={"n": 2, "explain": True})
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            e = item["explanation"]
            assert e["available"] is False and "not a sum" in e["why"]
            assert e["reasons"] is None and e["fields"] is None
