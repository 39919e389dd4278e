"""A history model's state moved one interaction at a time (bundle/incremental.py) equals the
state recomputed from the whole row, after 1,000 random interactions with evictions and
repeats, for every family: the pair sums and the state, 1e-5 relative."""

from __future__ import annotations

import numpy as np
import pytest

from bundle import OnnxScorer, load_bundle, reference_scorer
from bundle.history import HistoryField
from bundle.incremental import IncrementalState, PairSums
from tests.export.helpers import GEM, export, random_model
from tests.export.test_parity import WINDOW, _id
from tests.factories import tiny_interactions
from training.data.history import with_history_field
from training.data.protocols import make_split

FAMILIES = [("fm", {}), ("transfm", {}), ("nfm", {}), ("deepfm", {}),
            ("gmlfm", {"distance": "dnn"}), ("gmlfm", {"distance": "cosine", "weight": False}),
            ("gmlfm", {"distance": "chebyshev"}), ("gmlfm", {**GEM, "distance": "dnn"})]
STEPS, CHECK_EVERY = 1000, 100


@pytest.fixture(scope="module")
def history_data():
    data = with_history_field(tiny_interactions(), WINDOW, "sqrt")
    return data, make_split(data, "topn", seed=0)


def assert_state_close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("variant", FAMILIES, ids=_id)
def test_a_thousand_interactions_move_the_state_as_a_recompute_would(tmp_path, history_data,
                                                                      variant):
    data, split = history_data
    model, options = variant
    bundle = load_bundle(export(random_model(data, split, model, **options), data, split,
                                tmp_path))
    scorer, history = reference_scorer(bundle), HistoryField(bundle)
    incremental = IncrementalState(scorer, history)
    idx, val = bundle.users.row(3)
    val = val.copy()
    val[history.columns] = 0  # the profile's own columns only
    rng = np.random.default_rng(0)
    catalog = [str(i) for i in bundle.catalog.ids[:40]]  # few items: repeats move the window
    interactions: list[str] = []
    window, sums = [], incremental.build(idx, val, [])[1]
    for step in range(1, STEPS + 1):
        batch = list(rng.choice(catalog, size=int(rng.integers(1, 4))))
        interactions += batch
        window, state, sums = incremental.update(idx, val, window, sums, batch)
        if step % CHECK_EVERY == 0 or step == STEPS:
            assert window == history.window(interactions)
            rebuilt_state, rebuilt = incremental.build(idx, val, window)
            np.testing.assert_allclose(sums.as_array(), rebuilt.as_array(), rtol=1e-5,
                                       atol=1e-5 * max(1.0, abs(rebuilt.window)))
            row_idx, row_val = history.apply(idx, val, window)
            recomputed = scorer.user_state(row_idx[None], row_val[None])[0]
            assert_state_close(state, recomputed)
            assert_state_close(rebuilt_state, recomputed)
    served = OnnxScorer(bundle, threads=1).user_state(row_idx[None], row_val[None])[0]
    np.testing.assert_allclose(state, served, rtol=1e-4, atol=1e-4 * np.abs(served).max())


def test_pair_sums_round_trip_as_bytes():
    sums = PairSums(1.5, -2.25, 1e-9)
    assert PairSums.of(sums.as_array()) == sums
