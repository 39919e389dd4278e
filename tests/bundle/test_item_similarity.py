"""Item-to-item similarity (bundle/item_similarity.py) held to its definition, the double sum
Σ_{l ∈ a} Σ_{m ∈ b} x_l x_m φ(l, m), written out here pair by pair from the bundle's tables
for every family; and maximal marginal relevance and intra-list similarity held to naive
loops."""

from __future__ import annotations

import numpy as np
import pytest

from bundle import load_bundle, reference_scorer
from bundle.item_similarity import ItemSimilarity, intra_list_similarity, min_max, mmr, symmetric
from tests.export.helpers import GEM, export, once_per_case, random_model
from tests.factories import tiny_interactions
from tests.support.naive_similarity import naive_sim
from training.data.protocols import make_split
from training.models.gmlfm import DISTANCES

VARIANTS = [
    *[(m, {}) for m in ("fm", "nfm", "transfm", "deepfm", "xdeepfm", "afm")],
    *[("gmlfm", {"distance": d, "weight": w, "layers": 1}) for d in DISTANCES
      for w in (True, False)],
    *[(m, GEM) for m in ("fm", "transfm")],
    ("gmlfm", {**GEM, "distance": "dnn"}),
]


def _id(case) -> str:
    model, options = case
    return "-".join([model, *(f"{k}_{v}" for k, v in options.items() if k != "gcn_layers")])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    def build(case):
        model, options = case
        data = tiny_interactions()
        split = make_split(data, "topn", seed=0)
        net = random_model(data, split, model, **dict(options))
        return load_bundle(export(net, data, split, tmp_path_factory.mktemp("m")))
    return once_per_case(build, _id)


def close(got, want, relative=1e-5):
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
    np.testing.assert_allclose(got, want, rtol=relative, atol=relative * scale)


@pytest.mark.parametrize("case", VARIANTS, ids=_id)
def test_similarity_equals_the_double_sum(bundles, case):
    bundle = bundles(case)
    similarity = ItemSimilarity(reference_scorer(bundle))
    idx, val = bundle.catalog.rows()
    rng = np.random.default_rng(0)
    picked = rng.choice(len(idx), 6, replace=False)
    rows = [(idx[p], val[p]) for p in picked]
    want = np.array([[naive_sim(bundle, a, b) for b in rows] for a in rows])
    close(similarity.among(idx[picked], val[picked]), want)
    for a in rows:  # one against the whole catalog
        g = similarity.gains(*a)
        got = similarity.gather(g, idx, val)
        close(got[picked], np.array([naive_sim(bundle, a, b) for b in rows]))
        others = rng.choice(len(idx), 5, replace=False)
        close(got[others], np.array([naive_sim(bundle, a, (idx[o], val[o])) for o in others]))
    assert similarity.own_pair_term == (bundle.scoring["kind"] in ("fm", "transfm", "gmlfm"))


def test_a_feature_twice_in_a_row_counts_twice(bundles):
    bundle = bundles(("gmlfm", {"distance": "dnn", "weight": True, "layers": 1}))
    similarity = ItemSimilarity(reference_scorer(bundle))
    idx = np.array([[3, 7, 7], [5, 7, 0]])
    val = np.array([[1.0, 0.5, 0.5], [1.0, 1.0, 0.0]])
    want = naive_sim(bundle, (idx[0], val[0]), (idx[1], val[1]))
    close(similarity.among(idx, val)[0, 1], np.array(want))
    close(similarity.gather(similarity.gains(idx[0], val[0]), idx[1:], val[1:]), np.array([want]))


def naive_mmr(scores, sim, n, lam):
    k = len(scores)
    r = (scores - scores.min()) / (np.ptp(scores) or 1.0)
    off = [sim[i, j] for i in range(k) for j in range(k) if i != j]
    low, span = (min(off), max(off) - min(off)) if off else (0.0, 0.0)
    chosen = [0]
    while len(chosen) < min(n, k):
        best, best_gain = None, -np.inf
        for i in range(k):
            if i in chosen:
                continue
            near = max((sim[i, j] - low) / span if span else 0.0 for j in chosen)
            gain = (1 - lam) * r[i] - lam * near
            if gain > best_gain:
                best, best_gain = i, gain
        chosen.append(best)
    return chosen


def test_mmr_follows_its_definition_and_zero_is_the_ranking():
    rng = np.random.default_rng(4)
    for _ in range(30):
        k = int(rng.integers(1, 30))
        scores = np.sort(rng.normal(size=k))[::-1]
        raw = rng.normal(size=(k, k))
        sim = symmetric(raw)
        n = int(rng.integers(1, k + 3))
        np.testing.assert_array_equal(mmr(scores, sim, n, 0.0), np.arange(min(n, k)))
        for lam in (0.3, 0.6, 1.0):
            assert mmr(scores, sim, n, lam).tolist() == naive_mmr(scores, sim, n, lam)
    assert mmr(np.zeros(0), np.zeros((0, 0)), 5, 0.5).tolist() == []


def test_intra_list_similarity_is_the_mean_over_pairs():
    rng = np.random.default_rng(5)
    sim = rng.normal(size=(7, 7))
    pairs = [0.5 * (sim[i, j] + sim[j, i]) for i in range(7) for j in range(i + 1, 7)]
    assert intra_list_similarity(symmetric(sim)) == pytest.approx(np.mean(pairs))
    assert intra_list_similarity(sim) == pytest.approx(np.mean(pairs))
    assert intra_list_similarity(sim[:1, :1]) is None
    assert min_max(np.array([2.0, 2.0])).tolist() == [0.0, 0.0]
