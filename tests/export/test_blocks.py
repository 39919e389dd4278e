"""The block search (bundle/blocks.py, bundle/block_ranker.py, blocks.onnx) returns exactly the
float32 path's top n (model.onnx), ties and near ties included, over thousands of random
states, or gives up and says so; its block bound holds for every item, under states aimed
at each block's worst direction too; bundles without blocks load and serve as before."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bundle import OnnxScorer, blocks, load_bundle
from bundle import format as fmt
from bundle.block_ranker import BlockRanker
from bundle.layout import StateLayout
from bundle.reader import sha256_of
from tests.export.test_two_phase import (
    ELIGIBLE,
    INELIGIBLE,
    bundle_of,
    data,  # noqa: F401  (a fixture)
    history_data,  # noqa: F401  (a fixture)
    random_states,
    variant_id,
)

STATES = {"gmlfm-dnn": 10_000}  # the headline model; 2,000 for each other variant


def searcher(bundle) -> tuple[OnnxScorer, BlockRanker]:
    """A scorer with the block search on for every shape, never giving up (so that every
    answer is held to model.onnx's; giving up is tested on its own)."""
    scorer = OnnxScorer(bundle, threads=1, two_phase_from=None, prune="on")
    assert scorer.blocks is not None
    scorer.blocks.max_share = 1.0
    return scorer, scorer.blocks


@pytest.mark.parametrize("variant", [*ELIGIBLE, "history"], ids=lambda v: v if isinstance(
    v, str) else variant_id(v))
def test_the_block_search_is_the_float32_top_n(tmp_path, data, history_data, variant):  # noqa: F811
    if variant == "history":
        bundle = bundle_of(tmp_path, history_data, "gmlfm", {"distance": "dnn"},
                           fmt.PAIR_ROWS)
        name = variant
    else:
        bundle, name = bundle_of(tmp_path, data, *variant), variant_id(variant)
    scorer, ranker = searcher(bundle)
    rng = np.random.default_rng(0)
    states = random_states(scorer, bundle, rng, STATES.get(name, 2000))
    # own users' states prune; arbitrary ones mostly read everything: both are held exact
    read, n = [], 50
    excludes = [np.sort(rng.choice(len(bundle.catalog), int(rng.choice([0, 5, 200])),
                                   replace=False)) for _ in states]
    wanted = [scorer.float32_top_n(states[at:at + 1000], n, excludes[at:at + 1000])
              for at in range(0, len(states), 1000)]  # model.onnx, 1,000 users a call
    want_items, want_scores = (np.concatenate([w[i] for w in wanted]) for i in (0, 1))
    for row, (state, exclude) in enumerate(zip(states, excludes)):
        take = int(rng.choice([1, 3, 10, 50]))  # a top n is a prefix of the top 50
        got = ranker.top_n(state[None], take, [exclude])
        assert got is not None  # max_share 1: it never gives up on finite states
        np.testing.assert_array_equal(got[0][0], want_items[row, :take])
        np.testing.assert_array_equal(got[1][0], want_scores[row, :take])  # to the last bit
        read.append(ranker.last.items)
    assert min(read) < len(bundle.catalog)  # some searches stopped early


@pytest.mark.parametrize("variant", ELIGIBLE, ids=variant_id)
def test_the_block_bound_holds_for_every_item(tmp_path, data, variant):  # noqa: F811
    """Random states, and per block a state aimed along its worst direction (the query, or
    a, b, hv and t, along the block's centre plus its farthest item)."""
    bundle = bundle_of(tmp_path, data, *variant)
    scorer, ranker = searcher(bundle)
    layout = StateLayout.of(bundle.scoring)
    rng = np.random.default_rng(1)
    states = np.concatenate([random_states(scorer, bundle, rng, 200),
                             aimed(bundle, ranker, rng)])
    states[:, slice(*layout.span("part"))] = 0  # model.onnx's scores are the items' own
    everything = np.arange(len(bundle.catalog))[None]
    of_block = np.empty(len(bundle.catalog), np.int64)
    of_block[ranker.order] = np.repeat(np.arange(ranker.n_blocks), ranker.sizes)
    slack = []
    for state in states:
        served = scorer.score(state[None], everything)[0].astype(np.float64)
        bound = blocks.bounds(bundle.scoring, ranker.summaries, state)[of_block]
        assert (served <= bound).all()
        slack.append(np.median(bound - served) / max(np.std(served), 1e-30))
    assert np.median(slack) < 50  # a bound that can prune, not one that merely holds


def aimed(bundle, ranker: BlockRanker, rng: np.random.Generator) -> np.ndarray:
    """Per block, a state whose user rows point along the block's worst direction: the
    centre's direction plus that of the block's item farthest from it (linear: the query; feature
    pairs: a, b, each hv_j and t_j), with random signs for x and scales 10^-3..10^3."""
    layout = StateLayout.of(bundle.scoring)
    table, linear = bundle.item_table, bundle.scoring["family"] == fmt.LINEAR
    out = []
    for b in range(ranker.n_blocks):
        members = ranker.order[ranker.offsets[b]:ranker.offsets[b + 1]]
        state = np.zeros(layout.size)
        scale = 10.0 ** rng.uniform(-3, 3)
        if linear:
            rows = table("matrix")[members].astype(np.float64)
            centre = rows.mean(0)
            far = rows[np.argmax(np.linalg.norm(rows - centre, axis=1))]
            state[slice(*layout.span("query"))] = scale * (centre + far)
        else:
            features = bundle.array(fmt.ITEM_IDX)[members, 0]
            v, t = (table(name)[features].astype(np.float64) for name in ("feature_v",
                                                                          "feature_t"))
            far_v = v[np.argmax(np.linalg.norm(v - v.mean(0), axis=1))] + v.mean(0)
            far_t = t[np.argmax(np.linalg.norm(t - t.mean(0), axis=1))] + t.mean(0)
            width = bundle.scoring["user_width"]
            state[slice(*layout.span("a"))] = scale * far_v
            state[slice(*layout.span("b"))] = scale * far_v
            state[slice(*layout.span("hv"))] = np.tile(scale * far_v, width)
            state[slice(*layout.span("t"))] = np.tile(scale * far_t, width)
            state[slice(*layout.span("x"))] = -rng.choice([-1.0, 1.0], width)
        out.append(state)
    return np.asarray(out, np.float32)


def test_it_gives_up_where_it_would_read_too_much_and_the_full_pass_answers(tmp_path, data):  # noqa: F811
    bundle = bundle_of(tmp_path, data, "gmlfm", {"distance": "dnn"})
    scorer = OnnxScorer(bundle, threads=1, two_phase_from=None, prune="on")
    assert scorer.blocks is not None
    scorer.blocks.max_share = 0.0  # any read is too much
    state = random_states(scorer, bundle, np.random.default_rng(2), 2)[:1]
    assert scorer.blocks.top_n(state, 10, None) is None
    got = scorer.top_n(state, 10, [np.zeros(0, np.int64)])
    want = scorer.float32_top_n(state, 10, None)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert scorer.outcomes["pruned_fallback"] == 1 and scorer.outcomes["pruned"] == 0
    nan = state.copy()
    nan[0, -1] = np.nan
    assert scorer.blocks.top_n(nan, 10, None) is None  # a non-finite state never prunes


def test_everything_excluded_leaves_no_answer_as_model_onnx(tmp_path, data):  # noqa: F811
    bundle = bundle_of(tmp_path, data, "fm", {})
    scorer, ranker = searcher(bundle)
    state = random_states(scorer, bundle, np.random.default_rng(3), 2)[:1]
    almost = np.arange(len(bundle.catalog) - 3)
    for exclude in (almost, np.arange(len(bundle.catalog))):
        got, want = ranker.top_n(state, 5, [exclude]), scorer.float32_top_n(state, 5, [exclude])
        assert got is not None
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("variant", INELIGIBLE[:2], ids=variant_id)
def test_families_without_a_bound_have_no_blocks(tmp_path, data, variant):  # noqa: F811
    bundle = bundle_of(tmp_path, data, *variant)
    assert fmt.BLOCKS_MODEL not in bundle.manifest["files"]
    scorer = OnnxScorer(bundle, threads=1, prune="on")
    assert scorer.blocks is None and set(scorer.paths.values()) == {"float32"}


def test_a_bundle_without_blocks_loads_and_serves_as_before(tmp_path, data):  # noqa: F811
    """A bundle from before blocks (its manifest without them, the files gone) loads, and
    every path answers by the full pass, the same answers."""
    bundle = bundle_of(tmp_path, data, "gmlfm", {"distance": "dnn"})
    manifest = without_files(bundle, "blocks")
    old = load_bundle(bundle.path)
    assert all(sha256_of(bundle.path / n) == e["sha256"] for n, e in manifest["files"].items())
    scorer = OnnxScorer(old, threads=1, two_phase_from=None, prune="auto")
    assert scorer.blocks is None and scorer.paths["n<=10"] == "float32"
    state = random_states(scorer, old, np.random.default_rng(4), 2)[:1]
    got = scorer.top_n(state, 10, None)
    want = OnnxScorer(bundle, threads=1, two_phase_from=None).float32_top_n(state, 10, None)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_auto_measures_each_shape(tmp_path, data):  # noqa: F811
    """prune="auto" decides per shape from its own measurement (never n>100), and the
    scorer's paths say which; the answers are model.onnx's whichever it picked."""
    bundle = bundle_of(tmp_path, data, "gmlfm", {"distance": "dnn"})
    scorer = OnnxScorer(bundle, threads=1, two_phase_from=None, prune="auto")
    assert set(scorer.paths) == {"n<=10", "n<=100", "n>100"}
    assert scorer.paths["n>100"] == "float32"
    assert set(scorer.paths.values()) <= {"pruned", "float32"}
    assert scorer.outcomes == dict.fromkeys(scorer.outcomes, 0)  # probes are not counted
    state = random_states(scorer, bundle, np.random.default_rng(5), 2)[:1]
    for n in (3, 50, 200):
        got, want = scorer.top_n(state, n, None), scorer.float32_top_n(state, n, None)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_the_partition_covers_the_catalog_once_in_blocks_of_similar_rows():
    rng = np.random.default_rng(6)
    x = np.concatenate([rng.normal(0, 1, (512, 4)), rng.normal(50, 1, (512, 4))])
    order, offsets = blocks.partition(x.astype(np.float32), 64)
    assert np.array_equal(np.sort(order), np.arange(1024))
    assert offsets[0] == 0 and offsets[-1] == 1024 and (np.diff(offsets) <= 64).all()
    for start, stop in zip(offsets[:-1], offsets[1:]):
        members = order[start:stop]
        assert np.all(np.diff(members) > 0)
        assert len(set((members >= 512).tolist())) == 1  # the two clusters never share one


class _Recording:
    """The ranker's onnxruntime session, noting the blocks each call is fed."""

    def __init__(self, session):
        self.session = session
        self.fed: list[int] = []

    def run(self, outputs, feed):
        self.fed += feed[fmt.BLOCK_IDS][0].tolist()
        return self.session.run(outputs, feed)


def test_a_block_whose_items_are_all_excluded_is_never_read(tmp_path, data):  # noqa: F811
    bundle = bundle_of(tmp_path, data, "gmlfm", {"distance": "dnn"})
    scorer, ranker = searcher(bundle)
    state = random_states(scorer, bundle, np.random.default_rng(7), 2)[:1]
    first = int(np.argmax(blocks.bounds(bundle.scoring, ranker.summaries, state[0])))
    gone = ranker.order[ranker.offsets[first]:ranker.offsets[first + 1]]
    exclude = np.concatenate([gone, gone[:1]])  # a position listed twice counts once
    ranker.session = recording = _Recording(ranker.session)
    got = ranker.top_n(state, 10, [exclude])
    want = scorer.float32_top_n(state, 10, [exclude])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert recording.fed and first not in recording.fed
    recording.fed.clear()
    ranker.top_n(state, 10, [gone[:-1]])  # one of its items left: it is read
    assert first in recording.fed


def test_blocks_without_slabs_take_the_full_pass(tmp_path, data):  # noqa: F811
    """A bundle whose blocks.onnx reads catalog positions (exported before slabs) serves by
    the full pass rather than feed that graph blocks."""
    bundle = bundle_of(tmp_path, data, "gmlfm", {"distance": "dnn"})
    without_files(bundle, "blocks/slab_")
    scorer = OnnxScorer(load_bundle(bundle.path), threads=1, two_phase_from=None, prune="on")
    assert scorer.blocks is None and set(scorer.paths.values()) == {"float32"}


def without_files(bundle, prefix: str) -> dict:
    """Delete the bundle's files under `prefix` and their manifest entries, as a bundle
    exported before them would be; the manifest left."""
    manifest = json.loads((bundle.path / fmt.MANIFEST).read_text())
    for name in [n for n in manifest["files"] if n.startswith(prefix)]:
        (bundle.path / name).unlink()
        del manifest["files"][name]
    (bundle.path / fmt.MANIFEST).write_text(json.dumps(manifest))
    return manifest
