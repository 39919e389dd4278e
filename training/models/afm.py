"""Attentional factorization machine (Xiao et al., IJCAI 2017).

    ŷ(x) = w0 + Σ_i w_i x_i + pᵀ Σ_{f<g} a_fg (e_f ⊙ e_g),   e_f = Σ_{j in field f} x_j v_j
    a_fg = softmax over pairs of hᵀ ReLU(W (e_f ⊙ e_g) + b)

Pairs run over fields, not columns: with one-hot fields that is the paper's pairs of non-zero
features; a multi-hot field (genres) enters as its pooled vector and has no pairs inside.
A field that is all padding for a row (an item with no genre) has e_f = 0: its pairs add
nothing to the sum but still take a share of the softmax (logit hᵀ ReLU(b)), which only
rescales the other pairs' weights. We let them participate rather than mask them, so every
row has the same F(F−1)/2 pairs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from training.models.base import DropoutOptions, FeatureModel
from training.models.deepfm import FieldPool

AFMOptions = DropoutOptions


class AFM(FeatureModel):
    """Dropout acts on the pair products (the pair-wise interaction layer), as in the paper.

    h and p start at ones and W with Glorot-normal, as the authors' code does: attention then
    starts near uniform and the pair term near FM's average pair.
    """

    def __init__(self, n_features: int, dim: int, slot_field: Sequence[int],
                 dropout: float = 0.0, init_std: float = 0.01, attention: int | None = None):
        super().__init__(n_features, dim, init_std)
        self.pool = FieldPool(slot_field)
        rows, cols = torch.triu_indices(self.pool.n_fields, self.pool.n_fields, 1)
        self.register_buffer("pair_rows", rows, persistent=False)  # (P,), P = F(F−1)/2
        self.register_buffer("pair_cols", cols, persistent=False)
        size = attention or dim
        self.attention = nn.Linear(dim, size)  # W (size × k), b
        nn.init.xavier_normal_(self.attention.weight)
        nn.init.zeros_(self.attention.bias)
        self.h = nn.Parameter(torch.ones(size))
        self.p = nn.Parameter(torch.ones(dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, idx: torch.Tensor, val: torch.Tensor) -> torch.Tensor:
        """idx, val (B, W) -> scores (B,)."""
        e = self.pool(self.embed(idx), val)  # (B, F, k)
        products = e[:, self.pair_rows] * e[:, self.pair_cols]  # (B, P, k)
        weights = torch.softmax(torch.relu(self.attention(products)) @ self.h, -1)  # (B, P)
        pooled = (weights.unsqueeze(-1) * self.dropout(products)).sum(1)  # (B, k)
        return self.w0 + self.linear(idx, val) + pooled @ self.p
