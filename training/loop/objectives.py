"""What one epoch trains on, and the loss: pointwise squared loss on ±1 labels (the papers'),
or BPR on (positive, sampled negative) pairs (the GML-FM paper's stated future work).

Both take their negatives from the split's sampler: the protocol's fixed draw, or given a
`resample_seed` a fresh draw every epoch after the first (seeded by that seed and the epoch).
Each batch comes with its share (`distributed.shard_batches`): 1 for a single process; under
torchrun a rank gets its part of every batch and weights its loss by that share.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.nn import functional

from training.data.protocols import Split
from training.errors import ConfigError
from training.loop.batches import TensorInstances
from training.loop.distributed import SINGLE, World, batch_bounds, shard_batches

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # idx (n, W), val (n, W), target
Shared = tuple[Batch, float]  # a batch (or a rank's part of one) and its share


class Pointwise:
    """Squared loss between scores and ±1 labels."""

    def __init__(self, split: Split, batch_size: int, resample_seed: int | None = None,
                 world: World = SINGLE):
        if resample_seed is not None and split.sampler is None:
            raise ConfigError("--resample-negatives needs interaction data (MovieLens, "
                              "synthetic); libFM files fix their negatives")
        self.split, self.batch_size, self.resample_seed = split, batch_size, resample_seed
        self.fixed, self.world = TensorInstances(split.train), world
        self.steps = len(batch_bounds(len(self.fixed), batch_size, world))

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[Shared]:
        train = self.fixed
        if self.resample_seed is not None and epoch > 1:  # epoch 1 uses the protocol's draw
            rng = np.random.default_rng([self.resample_seed, epoch])
            train = TensorInstances(self.split.sampler.draw(rng))
        for part, share in shard_batches(len(train), self.batch_size, generator, self.world):
            yield train.batch(part), share

    def __len__(self) -> int:
        return self.steps

    @staticmethod
    def loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        idx, val, labels = batch
        return functional.mse_loss(model(idx, val), labels)


class BPR:
    """-log σ(ŷ(u, i) − ŷ(u, j)) for each training positive i and each of its sampled
    negatives j; one forward call scores a batch's positives and negatives together."""

    def __init__(self, split: Split, batch_size: int, resample_seed: int | None = None,
                 world: World = SINGLE):
        if split.task != "topn" or split.sampler is None:
            raise ConfigError("--loss bpr needs --task topn on interaction data")
        self.sampler, self.batch_size, self.resample_seed = split.sampler, batch_size, \
            resample_seed
        self.fixed_negatives = split.train.rows[1][len(self.sampler.users):].reshape(
            len(self.sampler.users), self.sampler.negatives)  # the protocol's draw
        self.world = world
        self.steps = len(batch_bounds(len(self.sampler.users), batch_size, world))

    def batches(self, epoch: int, generator: torch.Generator) -> Iterator[Shared]:
        s, n = self.sampler, self.sampler.negatives
        negatives = self.fixed_negatives
        if self.resample_seed is not None and epoch > 1:
            negatives = s.draw_items(np.random.default_rng([self.resample_seed, epoch]))
        users = np.concatenate([s.users, np.repeat(s.users, n)])
        pairs = TensorInstances(s.data.pairs(users, np.concatenate([s.items, negatives.ravel()]),
                                             np.zeros(len(users))))
        for pos, share in shard_batches(len(s.users), self.batch_size, generator, self.world):
            neg = len(s.users) + (pos.unsqueeze(1) * n + torch.arange(n)).ravel()  # (B n,)
            idx, val, _ = pairs.batch(torch.cat([pos, neg]))  # pos: (B,)
            yield (idx, val, torch.tensor(len(pos))), share

    def __len__(self) -> int:
        return self.steps

    def loss(self, model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        idx, val, n_pos = batch
        scores = model(idx, val)
        pos, neg = scores[:n_pos], scores[n_pos:].view(int(n_pos), self.sampler.negatives)
        return -functional.logsigmoid(pos.unsqueeze(1) - neg).mean()


def make_objective(split: Split, loss: str, batch_size: int, resample_seed: int | None,
                   world: World = SINGLE) -> Pointwise | BPR:
    """The objective a --loss names, batching for this rank of `world`."""
    return (BPR if loss == "bpr" else Pointwise)(split, batch_size, resample_seed, world)
