"""explain=true's decomposition: for every family whose score is a sum of pair terms, the terms
of random user rows (profile, context and history columns at random values) with catalog items
and with added items add up to the score the served paths return (onnxruntime's top n, the
numpy scorer's given items, a history user's incrementally built state); the user's own terms
are the same for every item; the other families say why they have none.
"""

from __future__ import annotations

import numpy as np
import pytest

from bundle import AddedItems, OnnxScorer, load_bundle, reference_scorer
from bundle import format as fmt
from bundle.explain import Explainer
from bundle.history import HistoryField
from bundle.incremental import IncrementalState
from tests.bundle.test_added_items import random_item
from tests.export.helpers import GEM, export, once_per_case, random_model
from tests.export.test_export_cli import _libfm_folder as libfm_folder
from tests.factories import tiny_interactions
from training.data.history import with_history_field
from training.data.protocols import make_split
from training.data.specs import load_data
from training.models.gmlfm import DISTANCES

DECOMPOSABLE = [
    ("fm", {}), ("transfm", {}),
    *[("gmlfm", {"distance": d, "weight": w, "layers": 2}) for d in DISTANCES
      for w in (True, False)],
    ("fm", GEM), ("transfm", GEM), ("gmlfm", {**GEM, "distance": "dnn"}),
]
HISTORY = [("fm", {}), ("transfm", {}), ("gmlfm", {"distance": "dnn"}),
           ("gmlfm", {"distance": "cosine", "weight": False}),
           ("gmlfm", {"distance": "chebyshev"})]
CASES = ([(*v, "plain") for v in DECOMPOSABLE] + [(*v, "history") for v in HISTORY]
         + [(m, o, "context") for m, o in [("fm", {}), ("transfm", {}),
                                           ("gmlfm", {"distance": "mahalanobis"})]])
NOT_DECOMPOSABLE = ["nfm", "deepfm", "xdeepfm", "afm"]
RELATIVE = 1e-5


def _id(case):
    model, options, data = case
    return "-".join([model, *(f"{k}_{v}" for k, v in options.items() if k != "gcn_layers"),
                     data])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    def build(case):
        model, options, kind = case
        if kind == "context":  # libFM lines of (user, item, context): the context
            data = load_data(f"libfm:{libfm_folder(tmp_path_factory.mktemp('d'))}",
                             libfm_fields="field0:user,field1:item,field2")
            split = make_split(data, "rating", seed=0)  # joins the served user row
        else:
            data = tiny_interactions()
            data = with_history_field(data, 4, "sqrt") if kind == "history" else data
            split = make_split(data, "topn", seed=0)
        net = random_model(data, split, model, **dict(options))
        return load_bundle(export(net, data, split, tmp_path_factory.mktemp("m")))
    return once_per_case(build, _id)


def random_row(bundle, rng) -> tuple[np.ndarray, np.ndarray]:
    """A user row with a random feature of its field in every column, at a random value
    (a fifth of them empty): profile, context and history columns alike."""
    idx = np.zeros(len(bundle.user_columns), np.int32)
    val = np.zeros(len(bundle.user_columns), np.float32)
    for c, name in enumerate(bundle.user_columns):
        field = bundle.fields.named(name)
        idx[c] = field.offset + rng.integers(len(field.vocab))
        val[c] = 0.0 if rng.random() < 0.2 else rng.uniform(0.1, 1.5)
    return idx, val


def served_state(bundle, scorer, rng, idx, val):
    """The state the service would hold for this row: a history model's built from the
    profile columns and a random window through the incremental path."""
    history = HistoryField.of(bundle)
    if history is None:
        return idx, val, scorer.user_state(idx[None], val[None])
    window = [str(i) for i in rng.choice(bundle.catalog.ids, history.size, replace=False)]
    profile_idx, profile_val = history.apply(idx, val, [])
    state, _ = IncrementalState(scorer, history).build(profile_idx, profile_val, window)
    row_idx, row_val = history.apply(idx, val, window)
    return row_idx, row_val, state[None]


def assert_sums(terms, scores) -> None:
    """Each item's terms add up to its score within RELATIVE of the score."""
    total = terms.total
    scale = np.abs(scores)
    assert (np.abs(total - scores) <= RELATIVE * np.maximum(scale, 1e-6)).all(), \
        np.abs(total - scores) / scale


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_terms_add_up_to_the_served_scores(fitted, case):
    bundle = fitted(case)
    rng = np.random.default_rng(0)
    scorer, onnx, explainer = reference_scorer(bundle), OnnxScorer(bundle, 1), Explainer(bundle)
    assert explainer.available and explainer.why_not is None
    item_idx, item_val = bundle.array(fmt.ITEM_IDX), bundle.array(fmt.ITEM_VAL)
    for _ in range(4):
        idx, val, state = served_state(bundle, scorer, rng, *random_row(bundle, rng))
        top, top_scores = onnx.top_n(state, min(10, len(bundle.catalog)))
        terms = explainer.terms(idx, val, item_idx[top[0]], item_val[top[0]])
        assert_sums(terms, top_scores[0].astype(np.float64))
        some = rng.choice(len(bundle.catalog), min(20, len(bundle.catalog)), replace=False)
        terms = explainer.terms(idx, val, item_idx[some], item_val[some])
        assert_sums(terms, scorer.score(state, some[None])[0].astype(np.float64))
        assert_sums(terms, onnx.score(state, some[None])[0].astype(np.float64))
        # the user's own terms, the same for every item, are its state's `part`
        if scorer.layout.has("part"):
            part = scorer.layout.view(state, "part", 1)[0, 0]
            np.testing.assert_allclose(terms.user_linear + terms.user_pairs, part,
                                       rtol=RELATIVE, atol=RELATIVE)


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_terms_of_added_items_add_up_to_their_scores(fitted, case):
    bundle = fitted(case)
    rng = np.random.default_rng(1)
    scorer, explainer = reference_scorer(bundle), Explainer(bundle)
    added = AddedItems(bundle, scorer)
    items = [added.encode(*random_item(added, rng)) for _ in range(12)]
    parts = added.parts(items)
    for _ in range(3):
        idx, val, state = served_state(bundle, scorer, rng, *random_row(bundle, rng))
        terms = explainer.terms(idx, val, np.stack([i.idx for i in items]),
                                np.stack([i.val for i in items]))
        assert_sums(terms, added.score(state, parts)[0].astype(np.float64))


@pytest.mark.parametrize("case", [c for c in CASES if c[0] == "gmlfm"], ids=_id)
def test_gmlfm_pair_terms_are_weight_times_distance(fitted, case):
    bundle = fitted(case)
    explainer = Explainer(bundle)
    rng = np.random.default_rng(2)
    idx, val = random_row(bundle, rng)
    terms = explainer.terms(idx, val, bundle.array(fmt.ITEM_IDX)[:5],
                            bundle.array(fmt.ITEM_VAL)[:5])
    assert terms.distance is not None
    weight = 1.0 if terms.weight is None else terms.weight
    x = (val.astype(np.float64)[None, :, None]
         * bundle.array(fmt.ITEM_VAL)[:5].astype(np.float64)[:, None, :])
    np.testing.assert_allclose(terms.cross, x * weight * terms.distance, rtol=1e-12)
    assert (terms.weight is None) == (case[1].get("weight", True) is False)


@pytest.mark.parametrize("model", NOT_DECOMPOSABLE)
def test_models_without_a_sum_of_pair_terms_say_why(fitted, model):
    explainer = Explainer(fitted((model, {}, "plain")))
    assert not explainer.available
    assert "not a sum" in (explainer.why_not or "")
