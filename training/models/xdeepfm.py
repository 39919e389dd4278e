"""xDeepFM (Lian et al., KDD 2018): linear + compressed interaction network (CIN) + DNN.

    ŷ(x) = w0 + Σ_i w_i x_i + CIN(e) + DNN([e_1, …, e_F]),   e_f = Σ_{j in field f} x_j v_j

The CIN builds explicit vector-wise interactions of growing degree: layer l mixes every pair
(row h of X^{l−1}, field m of X^0) by the Hadamard product and compresses the H·F products to
H_l feature maps, X^l_{o} = Σ_{h,m} W^l_{o,hm} (X^{l−1}_h ⊙ X^0_m), with X^0 = e. Each layer
is sum-pooled over k and a linear unit reads the concatenation. As in the paper, no
nonlinearity and no bias inside the CIN, and every layer feeds the next (no split_half).
The DNN is DeepFM's; nothing is additive, so there is no user/item split.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from training.models.base import DropoutOptions, FeatureModel
from training.models.deepfm import FieldPool, tower

XDeepFMOptions = DropoutOptions


class CIN(nn.Module):
    """(B, F, k) field vectors -> (B,) score."""

    def __init__(self, n_fields: int, layer_sizes: Sequence[int] = (64, 64)):
        super().__init__()
        self.weights = nn.ParameterList()
        previous = n_fields
        for size in layer_sizes:
            weight = nn.Parameter(torch.empty(size, previous * n_fields))  # (H_l, H_{l−1} F)
            nn.init.xavier_normal_(weight)  # Glorot, as the authors' code
            self.weights.append(weight)
            previous = size
        self.out = nn.Linear(sum(layer_sizes), 1, bias=False)  # the model's w0 is the bias
        nn.init.xavier_normal_(self.out.weight)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        x, pooled = e, []
        for weight in self.weights:
            z = torch.einsum("bhk,bmk->bhmk", x, e).flatten(1, 2)  # (B, H_{l−1} F, k)
            x = torch.einsum("on,bnk->bok", weight, z)  # (B, H_l, k)
            pooled.append(x.sum(-1))  # (B, H_l)
        return self.out(torch.cat(pooled, 1)).squeeze(-1)


class XDeepFM(FeatureModel):
    """Dropout acts inside the DNN only, as in the paper."""

    def __init__(self, n_features: int, dim: int, slot_field: Sequence[int],
                 dropout: float = 0.0, init_std: float = 0.01,
                 cin_sizes: Sequence[int] = (64, 64), hidden: Sequence[int] = (256, 128)):
        super().__init__(n_features, dim, init_std)
        self.pool = FieldPool(slot_field)
        self.cin = CIN(self.pool.n_fields, cin_sizes)
        self.dnn = tower(self.pool.n_fields * dim, hidden, dropout)

    def forward(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """idx, val (B, W) -> scores (B,)."""
        e = self.pool(self.embed(idx), val)  # (B, F, k)
        deep = self.dnn(e.flatten(1)).squeeze(-1)  # (B,)
        return self.w0 + self.linear(idx, val) + self.cin(e) + deep
