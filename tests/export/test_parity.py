"""Every model kind, exported: the torch model's plain forward == the bundle's numpy reference
== onnxruntime (float32, 1e-4), and the same top 10 over the whole catalog, for known users
and for a user built from side features alone.

Weights are random and large (N(0, 0.3²)) so that every term of a score matters; the data has
a multi-hot item field, so item rows carry padding and shared features.
"""

from __future__ import annotations

import numpy as np
import pytest

from bundle import OnnxScorer, load_bundle, reference_scorer
from bundle import format as fmt
from bundle.history import HistoryField
from tests.export.helpers import (
    GEM,
    assert_close,
    assert_same_top,
    export,
    known_rows,
    random_model,
    torch_scores,
)
from tests.factories import tiny_interactions
from training.data.history import with_history_field
from training.data.protocols import make_split
from training.errors import ConfigError
from training.export.catalog import SideIndex, serving_data
from training.export.tables import cheaper_pair_form
from training.models.gmlfm import DISTANCES

VARIANTS = [
    *[(m, {}) for m in ("fm", "nfm", "transfm", "deepfm", "xdeepfm", "afm")],
    *[("gmlfm", {"distance": d, "weight": w, "layers": 2}) for d in DISTANCES
      for w in (True, False)],
    *[(m, GEM) for m in ("fm", "nfm", "transfm")],
    ("gmlfm", {**GEM, "distance": "dnn"}),
    ("gmlfm", {**GEM, "distance": "cosine", "weight": False}),
    ("gmlfm", {**GEM, "distance": "chebyshev"}),
    # the matrix form of the pair term (export picks rows for this narrow user)
    *[("gmlfm", {"distance": d, "layers": 2, "pair_form": fmt.PAIR_MATRIX})
      for d in ("dnn", "euclidean", "mahalanobis", "cosine")],
    ("gmlfm", {**GEM, "distance": "dnn", "pair_form": fmt.PAIR_MATRIX}),
]
USERS = np.array([0, 7, 13, 29])


@pytest.fixture(scope="module")
def data():
    data = tiny_interactions()
    return data, make_split(data, "topn", seed=0)


def _id(variant):
    model, options = variant
    return "-".join([model, *(f"{k}_{v}" for k, v in options.items() if k != "gcn_layers")])


@pytest.mark.parametrize("variant", VARIANTS, ids=_id)
def test_torch_reference_and_onnx_agree(tmp_path, data, variant):
    data, split = data
    model, options = variant
    options = dict(options)
    form = options.pop("pair_form", None)
    net = random_model(data, split, model, **options)
    users = data.user_table
    want = torch_scores(net, users.idx[USERS], users.val[USERS], data.item_table.idx,
                        data.item_table.val)  # before GEM's table is materialised
    bundle = load_bundle(export(net, data, split, tmp_path, pair_form=form))
    assert bundle.scoring.get("pair_form") == (form or bundle.scoring.get("pair_form"))
    reference, onnx = reference_scorer(bundle), OnnxScorer(bundle, threads=1)
    state = reference.user_state(*known_rows(bundle, data, USERS))
    assert state.shape == (len(USERS), bundle.scoring["state_size"])
    every = np.broadcast_to(np.arange(data.n_items), (len(USERS), data.n_items))
    seen = [bundle.users.seen_items(bundle.users.position(data.user_ids[u])) for u in USERS]
    for scorer in (reference, onnx):
        assert_close(scorer.score(state, every), want)
        items, scores = scorer.top_n(state, 10, seen)
        for row in range(len(USERS)):
            assert_same_top(items[row], want[row], seen[row])
            assert_close(scores[row], want[row, items[row]])
    assert_close(reference.catalog_scores(state), want)


@pytest.mark.parametrize("variant", VARIANTS[:9], ids=_id)
def test_a_user_known_only_by_side_features(tmp_path, data, variant):
    """No user_id: the state comes from the profile alone, as for a user never seen."""
    data, split = data
    model, options = variant
    net = random_model(data, split, model, seed=1, **options)
    bundle = load_bundle(export(net, data, split, tmp_path))
    encoded = bundle.encoder.encode({"group": "b", "user_id": "no such user"})
    assert encoded.ignored == {"user_id": ["no such user"]}
    idx, val = data.user_table.idx[:1].copy(), data.user_table.val[:1].copy()
    val[0, 0] = 0.0  # the user_id column empty, as padding
    idx[0, 1] = data.schema.field("group").offset + 1  # group "b"
    want = torch_scores(net, idx, val, data.item_table.idx, data.item_table.val)
    for scorer in (reference_scorer(bundle), OnnxScorer(bundle, threads=1)):
        state = scorer.user_state(encoded.idx[None], encoded.val[None])
        assert_close(scorer.score(state, np.arange(data.n_items)[None]), want)


def test_item_tables_stay_linear_in_k(tmp_path, data):
    """GML-FM with its weight: no k × k' matrix per item, only O(items · k) tables."""
    data, split = data
    net = random_model(data, split, "gmlfm", distance="dnn")
    bundle = load_bundle(export(net, data, split, tmp_path))
    k = bundle.scoring["dim"]
    for name, entry in bundle.manifest["files"].items():
        if name.startswith("items/"):
            shape = entry["shape"]  # two-phase codes lie (k, M): the long axis is the rows'
            assert len(shape) <= 2 and np.prod(shape) / max(shape, default=1) <= 2 * k + 2, name
    assert bundle.scoring["family"] == fmt.FEATURE_PAIRS


def test_export_picks_the_cheaper_pair_form(tmp_path, data):
    """Rows while 2 R k multiply-adds per item feature undercut the matrix form's k k' + k
    (at k = 64: up to R = 32 user columns), the matrix form beyond; only the row form gets
    the two-phase graph, whose bound is proved for it."""
    assert [cheaper_pair_form({"dim": 64, "user_width": r}) for r in (2, 12, 32, 33, 200)] \
        == [fmt.PAIR_ROWS] * 3 + [fmt.PAIR_MATRIX] * 2
    data, split = data
    net = random_model(data, split, "gmlfm", distance="dnn", dim=2)  # R = 2, k = 2: 8 > 6
    bundle = load_bundle(export(net, data, split, tmp_path))
    assert bundle.scoring["pair_form"] == fmt.PAIR_MATRIX
    assert fmt.TWO_PHASE_MODEL not in bundle.manifest["files"]
    rows = load_bundle(export(net, data, split, tmp_path, pair_form=fmt.PAIR_ROWS))
    assert rows.scoring["pair_form"] == fmt.PAIR_ROWS
    assert fmt.TWO_PHASE_MODEL in rows.manifest["files"]
    state = reference_scorer(bundle).user_state(*known_rows(bundle, data, USERS))
    every = np.broadcast_to(np.arange(data.n_items), (len(USERS), data.n_items))
    assert_close(OnnxScorer(bundle, threads=1).score(state, every),
                 OnnxScorer(rows, threads=1).score(state, every))
    with pytest.raises(ConfigError, match="--pair-form 'rows': only GML-FM"):
        export(random_model(data, split, "fm"), data, split, tmp_path, pair_form=fmt.PAIR_ROWS)
    with pytest.raises(ConfigError, match="--pair-form 'diagonal'.*of rows, matrix"):
        export(net, data, split, tmp_path, pair_form="diagonal")


def test_top_n_leaves_out_ragged_exclusions_and_pads(tmp_path, data):
    data, split = data
    bundle = load_bundle(export(random_model(data, split, "fm"), data, split, tmp_path))
    state = reference_scorer(bundle).user_state(*known_rows(bundle, data, USERS[:2]))
    keep = np.array([3, 40, 77])
    best = np.argsort(-reference_scorer(bundle).catalog_scores(state)[1], kind="stable")
    exclude = [np.setdiff1d(np.arange(data.n_items), keep), best[[0, 2]]]  # ragged: -1 pads
    for scorer in (reference_scorer(bundle), OnnxScorer(bundle, threads=1)):
        items, scores = scorer.top_n(state, 5, exclude)
        assert (np.sort(items[0, :3]) == keep).all() and (items[0, 3:] == -1).all()
        assert np.isneginf(scores[0, 3:]).all() and np.isfinite(scores[0, :3]).all()
        assert items[1].tolist() == best[[1, 3, 4, 5, 6]].tolist()
        everything, _ = scorer.top_n(state, data.n_items, [np.array([5, 0]), np.array([0])])
        assert 5 not in everything[0] and 5 in everything[1]
        for row, left in zip(everything, (data.n_items - 2, data.n_items - 1)):
            assert 0 not in row and (row[left:] == -1).all() and (row[:left] >= 0).all()


HISTORY_VARIANTS = [("fm", {}), ("gmlfm", {"distance": "dnn"}), ("deepfm", {}),
                    ("gmlfm", {**GEM, "distance": "dnn"}), ("nfm", {}), ("transfm", {}),
                    ("gmlfm", {"distance": "chebyshev"}), ("xdeepfm", {}), ("afm", {})]
WINDOW = 6


@pytest.fixture(scope="module")
def history_data():
    data = with_history_field(tiny_interactions(), WINDOW, "sqrt")
    return data, make_split(data, "topn", seed=0)


def latest_items(data, user: int) -> list[int]:
    """The user's interactions, oldest first (tiny_interactions' times never tie)."""
    mine = sorted((t, i) for u, i, t in zip(data.users.tolist(), data.items.tolist(),
                                            data.times.tolist()) if u == user)
    return [i for _, i in mine]


@pytest.mark.parametrize("variant", HISTORY_VARIANTS, ids=_id)
def test_a_history_bundle_serves_each_users_latest_window(tmp_path, history_data, variant):
    """A known user's stored row ends with its last N interactions of all (the test item
    too), weighed 1/√m; it scores like torch, and the ordered interactions ship beside it."""
    data, split = history_data
    model, options = variant
    net = random_model(data, split, model, **options)
    serving = serving_data(data, split, split.train.slot_field)
    want = torch_scores(net, serving.user_idx[USERS], serving.user_val[USERS],
                        serving.item_idx, serving.item_val,
                        np.concatenate([serving.user_columns, serving.item_columns]))
    bundle = load_bundle(export(net, data, split, tmp_path))
    if "pair_form" in bundle.scoring:  # R = 8 at k = 4: the matrix form, with a history
        assert bundle.scoring["pair_form"] == fmt.PAIR_MATRIX
    record = bundle.manifest["history"]
    assert (record["field"], record["size"], record["weight"]) == ("history", WINDOW, "sqrt")
    assert bundle.user_columns[-WINDOW:] == ("history",) * WINDOW
    idx, val = known_rows(bundle, data, USERS)
    for row, user in enumerate(USERS):
        ordered = latest_items(data, user)
        assert bundle.users.profile(bundle.users.position(data.user_ids[user]))["history"] == \
            [data.item_ids[i] for i in ordered[-WINDOW:]]
        assert val[row, -WINDOW:] == pytest.approx([WINDOW ** -0.5] * WINDOW)
        position = bundle.users.position(data.user_ids[user])
        offsets = bundle.array(record["offsets"])
        assert bundle.array(record["items"])[offsets[position]:offsets[position + 1]].tolist() \
            == ordered  # catalog positions are item codes here
    for scorer in (reference_scorer(bundle), OnnxScorer(bundle, threads=1)):
        assert_close(scorer.score(scorer.user_state(idx, val),
                                  np.broadcast_to(np.arange(data.n_items),
                                                  (len(USERS), data.n_items))), want)


def test_a_window_encoded_for_a_bundle_is_the_trainings(tmp_path, history_data):
    """What replay (and a server) sets into a row's history columns equals the training
    window of the same items."""
    data, split = history_data
    bundle = load_bundle(export(random_model(data, split, "fm"), data, split, tmp_path))
    test, group = split.test.instances, split.test.group_size
    table = test.tables[-1]
    sides = SideIndex.of(data.schema)
    for g in range(0, split.test.n_groups, 7):
        row = test.rows[-1][g * group]
        offset = data.schema.field("history").offset
        items = [data.item_ids[i - offset] for i, v in zip(table.idx[row], table.val[row]) if v]
        idx, val = HistoryField(bundle).encode(items)  # what the service builds
        np.testing.assert_array_equal(idx, sides.to_local(table.idx[row], table.val[row]))
        np.testing.assert_allclose(val, table.val[row], rtol=1e-6)
