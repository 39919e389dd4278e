"""GET and POST /items/{item_id}/similar against brute force, for every family.

Bundles of random weights (so every term moves the answer), one per family: FM, TransFM, NFM,
DeepFM, xDeepFM, AFM, GML-FM (weighted DNN, Manhattan and cosine without the weight), FM with
GEM, and with a history field FM, GML-FM-dnn and DeepFM. Brute force, computed here and
nowhere else:

- `pairs`: sim(a, b) = Σ_{l ∈ a} Σ_{m ∈ b} x_l x_m φ(l, m) pair by pair
  (tests/support/naive_similarity.py) over every item the catalog serves;
- `history`: the trained torch model's own forward on (an empty profile whose window holds
  the item, every candidate row).

The catalog holds an item added through PUT /items (as the query, and as a candidate) and a
retired bundle item (in no answer, a 404 as the query); filters restrict both measures.
"""

from __future__ import annotations

import numpy as np
import pytest

from bundle import AddedItems
from bundle.history import HistoryField
from tests.export.helpers import GEM, export, random_model, torch_scores
from tests.factories import tiny_interactions
from tests.service.api.conftest import serving, settings_for
from tests.service.api.reference import assert_same_ranking
from tests.support.naive_similarity import naive_sim
from training.data.history import with_history_field
from training.data.protocols import make_split
from training.export.catalog import SideIndex, serving_data

pytestmark = pytest.mark.anyio
CASES = {
    "fm": ("fm", {}, False), "transfm": ("transfm", {}, False), "nfm": ("nfm", {}, False),
    "deepfm": ("deepfm", {}, False), "xdeepfm": ("xdeepfm", {}, False),
    "afm": ("afm", {}, False),
    "gmlfm-dnn": ("gmlfm", {"distance": "dnn", "layers": 1}, False),
    "gmlfm-manhattan": ("gmlfm", {"distance": "manhattan", "weight": False}, False),
    "gmlfm-cosine": ("gmlfm", {"distance": "cosine", "weight": False}, False),
    "fm-gem": ("fm", GEM, False),
    "history-fm": ("fm", {}, True),
    "history-gmlfm": ("gmlfm", {"distance": "dnn", "layers": 1}, True),
    "history-deepfm": ("deepfm", {}, True),
}
RELATIVE = 1e-5
ADDED = {"genre": ["x", "w"]}  # the added item's features (tiny_interactions' genres)
N = 12


@pytest.fixture(scope="module", params=CASES)
def served(request, tmp_path_factory):
    model, options, history = CASES[request.param]
    data = tiny_interactions()
    data = with_history_field(data, 4, "sqrt") if history else data
    split = make_split(data, "topn", seed=0)
    net = random_model(data, split, model, **options)
    models = tmp_path_factory.mktemp(request.param)
    export(net, data, split, models)
    return data, split, net, models


class Brute:
    """Every item the catalog serves (the bundle's, then the added one), and both measures
    computed by their definitions."""

    def __init__(self, bundle, data, split, net, retired: set[str]):
        self.bundle, self.net = bundle, net
        idx, val = bundle.catalog.rows()
        added = AddedItems(bundle).encode(ADDED, "new-a")
        self.ids = [str(i) for i in bundle.catalog.ids.tolist()] + ["new-a"]
        self.idx = np.concatenate([idx, added.idx[None]])
        self.val = np.concatenate([val, added.val[None]])
        self.retired = retired
        self.genres = [set(bundle.catalog.details(p)["features"].get("genre", []))
                       for p in range(len(idx))] + [set(ADDED["genre"])]
        self.sides = SideIndex.of(data.schema)
        self.serving = serving_data(data, split, split.train.slot_field)
        self.history = HistoryField.of(bundle)

    def pairs(self, item: str) -> np.ndarray:
        q = self.ids.index(item)
        a = (self.idx[q], self.val[q])
        return np.array([naive_sim(self.bundle, a, (self.idx[b], self.val[b]))
                         for b in range(len(self.ids))])

    def history_scores(self, item: str) -> np.ndarray:
        """The torch model on an empty profile whose window holds `item`: one column of
        value 1 (1/√1), every other user column empty."""
        assert self.history is not None
        width = len(self.bundle.user_columns)
        idx, val = np.zeros((1, width), np.int32), np.zeros((1, width), np.float32)
        idx[0, self.history.columns], val[0, self.history.columns] = self.history.encode([item])
        user_idx = np.where(val != 0, self.sides.user_features[idx], 0)
        item_idx = np.where(self.val != 0, self.sides.item_features[self.idx], 0)
        columns = np.concatenate([self.serving.user_columns, self.serving.item_columns])
        return torch_scores(self.net, user_idx, val, item_idx, self.val, columns)[0] \
            .astype(np.float64)

    def top(self, item: str, scores: np.ndarray, n: int, passes=lambda k: True
            ) -> list[tuple[str, float]]:
        kept = [k for k, i in enumerate(self.ids)
                if i != item and i not in self.retired and passes(k)]
        best = sorted(kept, key=lambda k: (-scores[k], k))[:n]
        return [(self.ids[k], float(scores[k])) for k in best]


def listed(r) -> list[tuple[str, float]]:
    assert r.status_code == 200, r.text
    return [(i["item_id"], i["score"]) for i in r.json()["items"]]


async def test_similar_items_equal_brute_force(served):
    data, split, net, models = served
    async with serving(settings_for(models)) as client:
        bundle = client.app.state.model_host.current.bundle
        ids = [str(i) for i in bundle.catalog.ids.tolist()]
        r = await client.put("/items/new-a", json={"features": ADDED,
                                                   "display": {"title": "New A"}})
        assert r.status_code == 200, r.text
        gone = ids[7]
        assert (await client.delete(f"/items/{gone}")).status_code == 204
        brute = Brute(bundle, data, split, net, {gone})
        history = brute.history is not None
        exclude = ids[20:40]
        only_x = {"include": {"genre": ["x", "no such genre"]}, "exclude_item_ids": exclude}

        def passes(k: int) -> bool:
            return "x" in brute.genres[k] and brute.ids[k] not in exclude

        for item in [ids[0], ids[3], ids[61], "new-a"]:
            measure = "history" if history and item != "new-a" else "pairs"
            scores = brute.history_scores(item) if measure == "history" else brute.pairs(item)
            r = await client.get(f"/items/{item}/similar", params={"n": N})
            assert r.json()["measure"] == measure and r.json()["item_id"] == item
            got = listed(r)
            assert_same_ranking(got, brute.top(item, scores, N), RELATIVE)
            assert item not in dict(got) and gone not in dict(got)
            whole = listed(await client.get(f"/items/{item}/similar", params={"n": 1000}))
            assert len(whole) == len(ids) + 1 - 2  # and the added item; not itself, not gone
            assert_same_ranking(whole, brute.top(item, scores, 1000), RELATIVE)

            r = await client.post(f"/items/{item}/similar", json={"n": N, "filter": only_x})
            assert_same_ranking(listed(r), brute.top(item, scores, N, passes), RELATIVE)
            assert r.json()["ignored"] == {"genre": ["no such genre"]}
            posted = listed(await client.post(f"/items/{item}/similar", json={"n": N}))
            assert posted == got
        shown = (await client.get(f"/items/{ids[0]}/similar", params={"n": 1000})).json()
        assert next(i for i in shown["items"] if i["item_id"] == "new-a")["title"] == "New A"


async def test_unknown_and_retired_items_are_404s(served):
    models = served[3]
    async with serving(settings_for(models)) as client:
        r = await client.get("/items/no-such-item/similar")
        assert r.status_code == 404 and r.json()["item_ids"] == ["no-such-item"]
        assert (await client.delete("/items/5")).status_code == 204
        r = await client.post("/items/5/similar", json={"n": 3})
        assert r.status_code == 404 and r.json()["retired"] is True
        r = await client.post("/items/1/similar", json={"n": 0})
        assert r.status_code == 422
        r = await client.post("/items/1/similar", json={"filter": {"include": {"colour": ["r"]}}})
        assert r.status_code == 422
