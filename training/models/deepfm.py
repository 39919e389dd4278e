"""DeepFM (Guo et al., IJCAI 2017), plus the two pieces the field-aware baselines share.

    ŷ(x) = w0 + Σ_i w_i x_i + Σ_{i<j} <v_i, v_j> x_i x_j + DNN([e_1, …, e_F])

The FM part is FM's math on the columns; the DNN reads one vector per field, e_f = Σ x_j v_j
over the columns j of field f (a one-hot field gives its v, a multi-hot one its weighted sum),
and both parts share the embedding table. The DNN is not additive in the features, so there is
no user/item split: candidates are scored in batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from training.models.base import DropoutOptions, FeatureModel

DeepFMOptions = DropoutOptions


class FieldPool(nn.Module):
    """e_f = Σ_{columns j of field f} x_j v_j: (B, W, k), (B, W) -> (B, F, k).

    Fields are the distinct values of slot_field, in sorted order; the (W, F) one-hot matrix is
    a buffer, so pooling is one einsum with no loop over rows. Because it sums x v, a padding
    column (x = 0) adds nothing to its field, whatever its index.
    """

    def __init__(self, slot_field: Sequence[int]):
        super().__init__()
        fields, position = np.unique(np.asarray(slot_field, dtype=np.int64),
                                     return_inverse=True)
        position = torch.as_tensor(position.reshape(-1))
        onehot = torch.zeros(len(position), len(fields))
        onehot[torch.arange(len(position)), position] = 1.0
        self.register_buffer("onehot", onehot, persistent=False)  # (W, F), from the arguments

    @property
    def n_fields(self) -> int:
        return self.onehot.shape[1]

    def forward(self, v: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        if val.shape[1] != self.onehot.shape[0]:
            raise ValueError(f"rows have {val.shape[1]} columns, slot_field has "
                             f"{self.onehot.shape[0]}")
        return torch.einsum("bwk,wf->bfk", v * val.unsqueeze(-1), self.onehot.to(v.dtype))


def tower(in_dim: int, hidden: Sequence[int], dropout: float) -> nn.Sequential:
    """The DNN: (Linear, ReLU, Dropout) per hidden size, then Linear(·, 1): (B, in) -> (B, 1).

    Dense weights use Glorot-normal init as the authors' code does: N(0, 0.01) through several
    layers would leave the DNN's output and gradients near zero at the start.
    """
    layers: list[nn.Module] = []
    for size in hidden:
        layers += [nn.Linear(in_dim, size), nn.ReLU(), nn.Dropout(dropout)]
        in_dim = size
    layers.append(nn.Linear(in_dim, 1))
    for layer in layers:
        if isinstance(layer, nn.Linear):
            nn.init.xavier_normal_(layer.weight)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class DeepFM(FeatureModel):
    """Dropout acts inside the DNN only, as in the paper; the FM part is exact FM."""

    def __init__(self, n_features: int, dim: int, slot_field: Sequence[int],
                 dropout: float = 0.0, init_std: float = 0.01,
                 hidden: Sequence[int] = (256, 128)):
        super().__init__(n_features, dim, init_std)
        self.pool = FieldPool(slot_field)
        self.dnn = tower(self.pool.n_fields * dim, hidden, dropout)

    def forward(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """idx, val (B, W) -> scores (B,)."""
        v = self.embed(idx)  # (B, W, k)
        xv = v * val.unsqueeze(-1)  # (B, W, k)
        pair = 0.5 * (xv.sum(1).square() - xv.square().sum(1)).sum(-1)  # (B,)
        deep = self.dnn(self.pool(v, val).flatten(1)).squeeze(-1)  # (B, F*k) -> (B,)
        return self.w0 + self.linear(idx, val) + pair + deep
