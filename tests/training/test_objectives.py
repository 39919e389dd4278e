"""Training objectives: squared loss with fixed or fresh negatives, and BPR pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.factories import tiny_interactions
from training.data.protocols import rating_split, topn_split
from training.errors import ConfigError
from training.loop.objectives import BPR, Pointwise
from training.loop.trainer import TrainOptions, fit
from training.models import build_model
from training.models.fm import FMOptions


@pytest.fixture(scope="module")
def split():
    return topn_split(tiny_interactions(n_users=30, n_items=150, per_user=8), seed=0)


def _items(batches) -> list[np.ndarray]:
    return [idx[:, 2].numpy() for (idx, _, _), _ in batches]  # the item-id column


def test_pointwise_keeps_the_protocol_draw_unless_asked(split):
    fixed = Pointwise(split, batch_size=10_000)
    first = _items(fixed.batches(1, torch.Generator().manual_seed(0)))
    again = _items(fixed.batches(2, torch.Generator().manual_seed(0)))
    assert np.array_equal(first[0], again[0])
    fresh = Pointwise(split, batch_size=10_000, resample_seed=0)
    new = _items(fresh.batches(2, torch.Generator().manual_seed(0)))
    repeat = _items(fresh.batches(2, torch.Generator().manual_seed(0)))
    assert not np.array_equal(first[0], new[0]) and np.array_equal(new[0], repeat[0])


def test_bpr_pairs_each_positive_with_its_users_negatives(split):
    objective = BPR(split, batch_size=16, resample_seed=0)
    for (idx, _, n_pos), share in objective.batches(3, torch.Generator().manual_seed(0)):
        assert share == 1.0  # one process: every batch whole
        n = int(n_pos)
        users = idx[:, 0]
        assert len(idx) == 3 * n
        assert torch.equal(users[n:].view(n, 2), users[:n].unsqueeze(1).expand(n, 2))


def test_bpr_training_lowers_its_loss(split):
    model = build_model("fm", split.sampler.data.schema.n_features, split.train.slot_field,
                        FMOptions(dim=8))
    options = TrainOptions(loss="bpr", epochs=15, lr=0.01, patience=15)
    result = fit(model, split, options, seed=0, progress=False)
    losses = [r.train_loss for r in result.history]
    assert losses[-1] < 0.8 * losses[0]


def test_bpr_needs_topn_interactions():
    rating = rating_split(tiny_interactions(n_items=150), seed=0)
    with pytest.raises(ConfigError, match="bpr"):
        BPR(rating, batch_size=256)
