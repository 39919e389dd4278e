"""The two-phase ranking (bundle/two_phase.py, two_phase.onnx) returns exactly the float32
path's top n (model.onnx): the same items in the same order with the same float32 scores,
ties included, over thousands of random states on catalogs with planted exact and near ties;
its bound holds for every item, adversarial states included; and where its certificate
fails, the float32 path answers."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from bundle import OnnxScorer, load_bundle, two_phase
from bundle import format as fmt
from bundle.layout import StateLayout
from bundle.quantise import ITEM_LEVELS, USER_LEVELS, quantise_rows
from tests.export.helpers import GEM, export, random_model
from tests.export.test_parity import _id
from tests.factories import tiny_interactions
from training.data.history import with_history_field
from training.data.protocols import make_split
from training.data.schema import FeatureTable
from training.export.verify import _two_phase_disagreement

ELIGIBLE = [("fm", {}), ("transfm", {}), ("gmlfm", {"distance": "dnn"}),
            ("gmlfm", {"distance": "mahalanobis"}),
            ("gmlfm", {"distance": "euclidean", "weight": False}),
            ("gmlfm", {**GEM, "distance": "dnn"})]
INELIGIBLE = [("nfm", {}), ("deepfm", {}), ("gmlfm", {"distance": "chebyshev"}),
              ("gmlfm", {"distance": "cosine"})]
STATES = {"gmlfm-dnn": 10_000}  # the headline model; 2,000 for each other variant
N_ITEMS = 1200


def planted(data):
    """The catalog with planted ties: every item 4j + 1 has item 4j's feature row (the same
    score to the last bit), every item 4j + 3 item 4j + 2's with its values one part in 2^20
    larger (a near tie)."""
    table = data.item_table
    idx, val = table.idx.copy(), table.val.copy()
    idx[1::4], val[1::4] = idx[0::4][:len(idx[1::4])], val[0::4][:len(idx[1::4])]
    idx[3::4] = idx[2::4][:len(idx[3::4])]
    val[3::4] = val[2::4][:len(idx[3::4])] * np.float32(1 + 2.0 ** -20)
    return dataclasses.replace(data, item_table=FeatureTable(idx, val, table.slot_field))


@pytest.fixture(scope="module")
def data():
    base = planted(tiny_interactions(n_users=40, n_items=N_ITEMS))
    return base, make_split(base, "topn", seed=0)


@pytest.fixture(scope="module")
def history_data():
    base = with_history_field(planted(tiny_interactions(n_users=40, n_items=N_ITEMS)), 6,
                              "sqrt")
    return base, make_split(base, "topn", seed=0)


def bundle_of(tmp_path, data, model, options, pair_form=None):
    base, split = data
    return load_bundle(export(random_model(base, split, model, dim=8, **options), base,
                              split, tmp_path, pair_form=pair_form))


def random_states(scorer: OnnxScorer, bundle, rng: np.random.Generator,
                  count: int) -> np.ndarray:
    """Half the users' own states with shuffled rows and values scaled 10^-3..10^3; half
    arbitrary vectors, each part with its own scale 10^-4..10^4 (the bound holds for any
    state, so the graph is tested on any)."""
    half = count // 2
    users = rng.integers(0, len(bundle.users), half)
    rows = [bundle.users.row(int(u)) for u in users]
    idx = np.stack([r[0] for r in rows])
    idx = np.take_along_axis(idx, rng.permuted(np.tile(np.arange(half), (idx.shape[1], 1)),
                                               axis=1).T, axis=0)
    val = np.stack([r[1] for r in rows]) * 10.0 ** rng.uniform(-3, 3, (half, 1))
    own = scorer.user_state(idx, val.astype(np.float32))
    layout = StateLayout.of(bundle.scoring)
    free = np.concatenate([rng.standard_normal((count - half, size))
                           * 10.0 ** rng.uniform(-4, 4, (count - half, 1))
                           for _, size in layout.parts], axis=1)
    return np.concatenate([own, free.astype(np.float32)])


def variant_id(variant) -> str:
    model, options = variant
    return f"{model}-{options['distance']}" if "distance" in options and not \
        options.get("embedding") and options.get("weight", True) else _id(variant)


@pytest.mark.parametrize("variant", [*ELIGIBLE, "history"], ids=lambda v: v if isinstance(
    v, str) else variant_id(v))
def test_two_phase_top_n_is_the_float32_top_n(tmp_path, data, history_data, variant):
    if variant == "history":
        bundle = bundle_of(tmp_path, history_data, "gmlfm", {"distance": "dnn"},
                           fmt.PAIR_ROWS)  # at R = 8, k = 8 export would pick the matrix form
        name = variant
    else:
        bundle, name = bundle_of(tmp_path, data, *variant), variant_id(variant)
    scorer = OnnxScorer(bundle, threads=1, two_phase_from=0)
    assert scorer.two_phase is not None
    rng = np.random.default_rng(0)
    certified = 0
    states = random_states(scorer, bundle, rng, STATES.get(name, 2000))
    for state in states:
        n = int(rng.choice([1, 3, 10, 50]))
        exclude = np.sort(rng.choice(len(bundle.catalog), int(rng.choice([0, 5, 200])),
                                     replace=False))
        want = scorer.float32_top_n(state[None], n, [exclude])
        got = scorer.two_phase.top_n(state[None], n, [exclude])
        if got is None:
            continue
        certified += 1
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])  # to the last bit
    assert certified >= 0.75 * len(states)  # the rest fell back; at scale nearly none do


@pytest.mark.parametrize("variant", ELIGIBLE, ids=variant_id)
def test_the_bound_holds_for_every_item(tmp_path, data, variant):
    bundle = bundle_of(tmp_path, data, *variant)
    scorer = OnnxScorer(bundle, threads=1, two_phase_from=0)
    layout = StateLayout.of(bundle.scoring)
    rng = np.random.default_rng(1)
    states = random_states(scorer, bundle, rng, 200)
    states[:, slice(*layout.span("part"))] = 0  # model.onnx's scores are then the items' own
    everything = np.arange(len(bundle.catalog))[None]
    widths = []
    for state in states:
        served = scorer.score(state[None], everything)[0].astype(np.float64)
        approx, bound = first_pass(bundle, state)
        assert (np.abs(served - approx) <= bound).all()
        widths.append(np.median(bound) / max(np.std(served), 1e-30))
    assert np.median(widths) < 0.2  # a bound that prunes, not one that merely holds


def first_pass(bundle, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first pass in float64 from the bundle's codes (ŝ, E per item): an oracle written
    from the module doc of bundle/two_phase.py, not from the graph."""
    feed = two_phase.user_feed(bundle.scoring, state)
    table = bundle.item_table
    user_v = feed[fmt.USER_V].astype(np.int64) - two_phase.ZERO_POINT
    mix = feed[fmt.MIX][0].astype(np.float64)
    const = bundle.array(fmt.ITEM_CONST).astype(np.float64)
    bound = feed[fmt.BOUND][0].astype(np.float64) @ table("bound_basis").astype(np.float64)
    if bundle.scoring["family"] == fmt.LINEAR:
        products = (user_v @ table("q_matrix").astype(np.int64))[0]
        return const + mix[0] * table("q_matrix_scale") * products, bound
    products = user_v @ table("q_v").astype(np.int64)  # (2 + R, M)
    pairs = (feed[fmt.USER_T].astype(np.int64) - two_phase.ZERO_POINT) @ \
        table("q_t").astype(np.int64)
    q_mix, q_pair = table("q_mix").astype(np.float64), table("q_pair").astype(np.float64)
    gains = mix[0] * q_mix[0] * products[0] + mix[1] * q_mix[1] * products[1] \
        + q_pair * (mix[2:, None] * products[2:] * pairs).sum(0)
    cross = (gains[bundle.array(fmt.ITEM_IDX)] * bundle.array(fmt.ITEM_VAL)).sum(1)
    return const + cross, bound


@pytest.mark.parametrize("scale", [1e-30, 1e-6, 1.0, 1e6, 1e30])
def test_a_dot_product_of_codes_is_within_its_bound(scale):
    """|u·v − ασ (ã·q)| ≤ (‖u‖ + ‖δ‖) ε + ‖δ‖ ν, (1) of bundle/two_phase.py, for rows of any
    size: random, spiky (one entry 10^4 times the rest), constant, zero, sparse."""
    rng = np.random.default_rng(2)
    k = 64
    rows = rng.standard_normal((400, k)) * 10.0 ** rng.uniform(-3, 3, (400, 1))
    rows[::4] = 0
    rows[1::4, 0] = 1e4 * np.abs(rows[1::4]).max(1)
    rows[2::4] = 1.0
    rows[100:] *= rng.random((300, k)) < 0.1
    v = (rows * scale).astype(np.float32)
    u = rng.permutation(v)
    items, users = quantise_rows(v, ITEM_LEVELS), quantise_rows(u, USER_LEVELS)
    exact = (u.astype(np.float64) * v).sum(1)
    codes = (users.codes.astype(np.int64) * items.codes).sum(1)
    approx = users.scale.astype(np.float64) * items.scale * codes
    error, norm = items.error.astype(np.float64), items.norm.astype(np.float64)
    small = users.error.astype(np.float64)
    bound = (users.norm + small) * error + small * norm
    assert (np.abs(exact - approx) <= bound + 1e-12 * np.abs(exact)).all()


def test_integer_products_are_exact_at_the_extremes():
    """MatMulInteger on this machine: uint8 user codes up to 255 against int8 item codes of
    ±ITEM_LEVELS give exact int32 products (with ±127 they saturate without VNNI: why the
    items stop at 63)."""
    k, m = 64, 512
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b", "zero"], ["y"])], "probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [None, m])],
        [numpy_helper.from_array(np.tile(np.array([[ITEM_LEVELS], [-ITEM_LEVELS]], np.int8),
                                         (k // 2, m)) * np.sign(np.arange(m) - m / 2 + 0.5
                                                                ).astype(np.int8), "b"),
         numpy_helper.from_array(np.array(two_phase.ZERO_POINT, np.uint8), "zero")])
    session = ort.InferenceSession(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        .SerializeToString(), providers=["CPUExecutionProvider"])
    b = numpy_helper.to_array(graph.initializer[0]).astype(np.int64)
    for a in (np.full((2, k), 255, np.uint8), np.full((2, k), 1, np.uint8),
              np.tile(np.array([255, 1], np.uint8), (2, k // 2)),
              np.random.default_rng(3).integers(1, 256, (2, k)).astype(np.uint8)):
        np.testing.assert_array_equal(session.run(None, {"a": a})[0],
                                      (a.astype(np.int64) - two_phase.ZERO_POINT) @ b)


@pytest.mark.parametrize("variant", INELIGIBLE, ids=_id)
def test_families_without_a_bound_keep_the_float32_path(tmp_path, data, variant):
    bundle = bundle_of(tmp_path, data, *variant)
    assert fmt.TWO_PHASE_MODEL not in bundle.manifest["files"]
    assert OnnxScorer(bundle, threads=1, two_phase_from=0).two_phase is None


def test_an_uncertified_answer_is_the_float32_paths(tmp_path, data):
    """A shortlist of exactly n items is never certified (its lowest upper bound is at least
    its lowest lower bound): top_n answers through model.onnx, and counts it."""
    bundle = bundle_of(tmp_path, data, "gmlfm", {"distance": "dnn"})
    scorer = OnnxScorer(bundle, threads=1, two_phase_from=0)
    scorer.two_phase.shortlist_margin = -10  # K = 2 n - 10 = n
    state = random_states(scorer, bundle, np.random.default_rng(4), 2)[:1]
    assert scorer.two_phase.top_n(state, 10, None) is None
    items, scores = scorer.top_n(state, 10, None)
    want = scorer.float32_top_n(state, 10, None)
    np.testing.assert_array_equal(items, want[0])
    np.testing.assert_array_equal(scores, want[1])
    assert scorer.outcomes == {"certified": 0, "float32": 1, "pruned": 0, "pruned_fallback": 0}


def test_exports_check_refuses_codes_that_certify_a_wrong_top_n(tmp_path, data):
    """Export's check (verify._two_phase_disagreement) passes the codes as written, and names
    two_phase.onnx when its codes are written wrong (negated, under a bound of zero) so that
    it certifies top n lists that are not model.onnx's."""
    bundle = bundle_of(tmp_path, data, "gmlfm", {"distance": "dnn"})
    scorer = OnnxScorer(bundle, threads=1, two_phase_from=0)
    states = random_states(scorer, bundle, np.random.default_rng(5), 8)
    assert _two_phase_disagreement(scorer, states) is None
    wrong = tmp_path / "wrong"
    shutil.copytree(bundle.path, wrong)
    for name, broken in (("q_v", lambda a: -a), ("bound_basis", np.zeros_like)):
        file = wrong / fmt.item_table_file(name)
        np.save(file, broken(np.load(file)))  # same shape and dtype: the graph's offsets hold
    lying = OnnxScorer(load_bundle(wrong, verify=False), threads=1, two_phase_from=0)
    lying.two_phase.shortlist_margin = 0  # a shortlist short of the catalog, so the lie shows
    assert "two_phase.onnx certified a top n" in _two_phase_disagreement(lying, states)
