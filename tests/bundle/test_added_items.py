"""Items the catalog lacks, scored from their features: every family's parts of a catalog row
equal the exported ones, an added copy of a catalog item scores as it does, and random added
items score as the model's own pairwise definition on the joined row; a new id contributes
nothing, and a bundle exported before added items is refused for them with a clear message.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from bundle import (
    AddedItems,
    BundleError,
    BundleInputError,
    ItemParts,
    OnnxScorer,
    load_bundle,
    reference_scorer,
)
from bundle import format as fmt
from tests.export.helpers import GEM, export, once_per_case, random_model, torch_scores
from tests.factories import tiny_interactions
from training.data.history import with_history_field
from training.data.protocols import make_split
from training.export.catalog import SideIndex, serving_data
from training.models.gmlfm import DISTANCES

VARIANTS = [
    *[(m, {}) for m in ("fm", "nfm", "transfm", "deepfm", "xdeepfm", "afm")],
    *[("gmlfm", {"distance": d, "weight": w, "layers": 2}) for d in DISTANCES
      for w in (True, False)],
    *[(m, GEM) for m in ("fm", "nfm", "transfm")],
    ("gmlfm", {**GEM, "distance": "dnn"}),
    ("gmlfm", {**GEM, "distance": "manhattan", "weight": False}),
]
HISTORY = [("fm", {}), ("transfm", {}), ("nfm", {}), ("gmlfm", {"distance": "dnn"}),
           ("gmlfm", {"distance": "cosine", "weight": False}),
           ("gmlfm", {"distance": "chebyshev"}), ("deepfm", {})]
CASES = [(*v, False) for v in VARIANTS] + [(*v, True) for v in HISTORY]
RELATIVE = 1e-5  # float32 agreement between two computations of the same parts


def _id(case):
    model, options, history = case
    return "-".join([model, *(f"{k}_{v}" for k, v in options.items() if k != "gcn_layers"),
                     *(["history"] if history else [])])


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """case -> (data, split, net, bundle), each exported once for the module."""
    def build(case):
        model, options, history = case
        data = tiny_interactions()
        data = with_history_field(data, 4, "sqrt") if history else data
        split = make_split(data, "topn", seed=0)
        net = random_model(data, split, model, **dict(options))
        return data, split, net, load_bundle(export(net, data, split,
                                                    tmp_path_factory.mktemp("m")))
    return once_per_case(build, _id)


def close(got: np.ndarray, want: np.ndarray, relative: float = RELATIVE) -> None:
    """Within `relative` of each value, or of the largest of them."""
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
    np.testing.assert_allclose(got, want, rtol=relative, atol=relative * scale)


def user_states(bundle, rng, users: int = 6) -> np.ndarray:
    """States of random known users and, for split families, random vectors: an item's
    parts must meet any state as the catalog's do."""
    scorer = reference_scorer(bundle)
    picked = rng.choice(len(bundle.users), users, replace=False)
    rows = [bundle.users.row(int(p)) for p in picked]
    states = scorer.user_state(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]))
    if bundle.scoring["path"] == fmt.WHOLE:
        return states
    noise = rng.normal(size=(3, states.shape[1])).astype(np.float32)
    return np.concatenate([states, noise])


def random_item(added: AddedItems, rng) -> tuple[dict, str | None]:
    """Random item-side values (multi-hot values in a random order, sometimes one the
    vocabulary lacks) and an id that is known, new or absent."""
    features: dict = {}
    for field in added.bundle.fields.on_table_side(fmt.ITEM_SIDE):
        if field.name == added.id_field:
            continue
        width = added.bundle.item_columns.count(field.name)
        size = int(rng.integers(1, width + 1)) if field.kind == "multihot" else 1
        values = [str(v) for v in rng.choice(field.vocab, size, replace=False)]
        if size < width and rng.random() < 0.3:
            values.insert(int(rng.integers(0, size + 1)), "no such value")
        features[field.name] = values if field.kind == "multihot" else values[0]
    ids = added.bundle.catalog.ids
    item_id = [str(ids[rng.integers(len(ids))]), "a new item", None][int(rng.integers(3))]
    return features, item_id


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_the_parts_of_each_catalog_row_are_the_exported_ones(fitted, case):
    bundle = fitted(case)[3]
    scorer = reference_scorer(bundle)
    parts = scorer.item_parts(bundle.array(fmt.ITEM_IDX), bundle.array(fmt.ITEM_VAL))
    assert set(parts) == set(fmt.ITEM_PARTS[bundle.scoring["family"]]) == set(scorer.items)
    for name in parts:
        assert parts[name].shape == scorer.items[name].shape
        close(parts[name], scorer.items[name])


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_an_added_copy_of_a_catalog_item_scores_as_it(fitted, case):
    bundle = fitted(case)[3]
    rng = np.random.default_rng(1)
    added = AddedItems(bundle)
    assert added.id_field == "item_id"
    positions = rng.choice(len(bundle.catalog), 12, replace=False)
    items = []
    for p in positions:
        features = bundle.catalog.details(int(p))["features"]
        item = added.encode({k: v for k, v in features.items() if k != "item_id"},
                            item_id=str(bundle.catalog.ids[p]))
        assert item.id_known and not item.ignored
        np.testing.assert_array_equal(item.idx, bundle.array(fmt.ITEM_IDX)[p])
        np.testing.assert_array_equal(item.val, bundle.array(fmt.ITEM_VAL)[p])
        items.append(item)
    state = user_states(bundle, rng)
    want = reference_scorer(bundle).score(state, np.broadcast_to(positions,
                                                                 (len(state), len(positions))))
    got = added.score(state, added.parts(items))
    assert got.shape == want.shape and got.dtype == np.float32
    close(got, want)


def naive(net):
    """The model's score by its definition on each joined row: the pair term as the double
    sum Σ_{i<j} x_i x_j φ(i, j) (FM's and TransFM's, GML-FM's pairwise form); NFM and the
    whole models are their own definition."""
    if hasattr(net, "form"):
        net.form = "pairwise"
    if type(net).__name__ != "FM":
        return net

    def fm(idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        xv = net.embedding(idx) * val.unsqueeze(-1)
        upper = torch.triu(torch.ones(idx.shape[1], idx.shape[1]), 1)
        return net.w0 + net.linear(idx, val) + (xv @ xv.transpose(1, 2) * upper).sum((1, 2))
    return fm


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_random_added_items_score_as_the_pairwise_definition(fitted, case):
    data, split, net, bundle = fitted(case)
    rng = np.random.default_rng(2)
    added = AddedItems(bundle)
    drawn = [random_item(added, rng) for _ in range(24)]
    items = [added.encode(features, item_id) for features, item_id in drawn]
    for (features, item_id), item in zip(drawn, items):
        unknown = [v for v in features.get("genre", []) if v == "no such value"]
        assert item.ignored == ({"genre": unknown} if unknown else {})
        assert item.id_known == (item_id not in (None, "a new item"))
    sides, serving = SideIndex.of(data.schema), serving_data(data, split, split.train.slot_field)
    users = rng.choice(len(serving.user_ids), 5, replace=False)
    item_idx = sides.item_features[np.stack([i.idx for i in items])]
    item_val = np.stack([i.val for i in items])
    want = torch_scores(naive(net), serving.user_idx[users], serving.user_val[users], item_idx,
                        item_val, np.concatenate([serving.user_columns, serving.item_columns]))
    rows = [bundle.users.row(int(u)) for u in users]  # bundle positions follow serving's
    state = added.scorer.user_state(np.stack([r[0] for r in rows]),
                                    np.stack([r[1] for r in rows]))
    close(added.score(state, added.parts(items)), want, 1e-4)


@pytest.mark.parametrize("case", CASES[:len(VARIANTS)], ids=_id)
def test_a_new_id_contributes_nothing(fitted, case):
    bundle = fitted(case)[3]
    added = AddedItems(bundle)
    features = {"genre": ["y", "x"]}
    new, none = added.encode(features, item_id="a new item"), added.encode(features)
    known = added.encode(features, item_id="17")
    assert not new.id_known and not none.id_known and known.id_known
    assert new.ignored == none.ignored == {}  # its own id is not a value it was given
    np.testing.assert_array_equal(new.idx, none.idx)
    np.testing.assert_array_equal(new.val, none.val)
    state = user_states(bundle, np.random.default_rng(3))
    scores = added.score(state, added.parts([new, none, known]))
    np.testing.assert_array_equal(scores[:, 0], scores[:, 1])
    assert not np.allclose(scores[:, 0], scores[:, 2])  # the known id brings its vectors


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_no_items_have_parts_of_every_name_and_no_scores(fitted, case):
    bundle = fitted(case)[3]
    added = AddedItems(bundle)
    empty, catalog = added.parts([]), reference_scorer(bundle).items
    assert len(empty) == 0 and set(empty) == set(catalog)
    for name in empty:
        assert empty[name].shape[1:] == catalog[name].shape[1:]
    state = user_states(bundle, np.random.default_rng(4))
    assert added.score(state, empty).shape == (len(state), 0)


def test_parts_stack_take_and_may_be_empty(fitted):
    bundle = fitted(("gmlfm", {"distance": "dnn"}, False))[3]
    added = AddedItems(bundle)
    a, b = added.encode({"genre": "x"}, "a"), added.encode({"genre": ["z", "w"]}, "3")
    both, state = added.parts([a, b]), user_states(bundle, np.random.default_rng(4))
    scores = added.score(state, both)
    joined = ItemParts.concat([added.parts([a]), added.parts([b])])
    np.testing.assert_array_equal(added.score(state, joined), scores)
    np.testing.assert_array_equal(added.score(state, both.take(np.array([1, 0]))),
                                  scores[:, ::-1])
    empty = added.parts([])
    assert len(empty) == 0 and added.score(state, empty).shape == (len(state), 0)


def test_values_an_item_cannot_take_are_refused_at_their_field(fitted):
    added = AddedItems(fitted(("fm", {}, False))[3])
    for features, field, problem in [
            ({"colour": "red"}, "colour", "not an item field"),
            ({"group": "a"}, "group", "not an item field"),  # a user field
            ({"item_id": "3"}, "item_id", "give it as the item's id"),
            ({"genre": ["x", "y", "z", "w"]}, "genre", "at most 3 value"),
            ({"genre": ["x", "x", "z", "z"]}, "genre", "at most 3 value")]:  # counted as sent
        with pytest.raises(BundleInputError, match=problem) as err:
            added.encode(features, item_id="3")
        assert err.value.field == field
    assert added.encode({"genre": ["nope", "x"]}).ignored == {"genre": ["nope"]}
    item = added.encode({"genre": ["z", "x", "z"]})
    assert item.ignored == {}
    genre = added.bundle.fields.named("genre")
    assert item.idx[1:].tolist() == [genre.offset + 2, genre.offset + 0, 0]
    assert item.val.tolist() == [0.0, 0.5, 0.5, 0.0]  # a repeated value is one feature


def strip(path, files: tuple[str, ...]) -> None:
    """Make the bundle at `path` one exported before added items: without the id field in its
    manifest and without `files`."""
    manifest = json.loads((path / fmt.MANIFEST).read_text())
    del manifest[fmt.ITEM_ID_FIELD]
    for name in files:
        del manifest["files"][name]
        (path / name).unlink()
    (path / fmt.MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize("case, new_files", [
    (("fm", {}, False), fmt.added_item_files({"kind": "fm"})),
    (("gmlfm", {"distance": "dnn"}, False), (fmt.table_file("w0"),
                                              fmt.item_table_file("feature_bias"))),
    (("deepfm", {}, False), ())], ids=["fm", "gmlfm-dnn", "deepfm"])
def test_a_bundle_from_before_added_items_serves_but_refuses_them(fitted, tmp_path, case,
                                                                    new_files):
    bundle = fitted(case)[3]
    assert bundle.item_features_supported
    old = tmp_path / bundle.path.name
    shutil.copytree(bundle.path, old)
    strip(old, new_files)
    old_bundle = load_bundle(old)
    assert not old_bundle.item_features_supported
    state = user_states(bundle, np.random.default_rng(5))
    for scorer in (OnnxScorer(old_bundle, threads=1), reference_scorer(old_bundle)):
        np.testing.assert_array_equal(scorer.top_n(state, 5)[0],
                                      OnnxScorer(bundle, threads=1).top_n(state, 5)[0])
    with pytest.raises(BundleError, match=r"exported before added items .*re-export it") as err:
        AddedItems(old_bundle)
    assert all(name in str(err.value) for name in new_files)
    with pytest.raises(BundleError, match="re-export"):
        reference_scorer(old_bundle).item_parts(np.zeros((1, 4), np.int32),
                                                np.ones((1, 4), np.float32))
