"""Feature-vector transforms T(v) of GML-FM: the metric is learned by learning T.

identity     T(v) = v                         (Euclidean)
linear       T(v) = L v, M = LᵀL              (Mahalanobis)
mlp          T(v) = tanh(W_L … tanh(W_1 v + b_1) … + b_L), dropout between layers (DNN)

Both learned transforms start at the identity (L = I; W = I, b = 0, so T(v) = tanh(v) ≈ v for
the small initial embeddings): every metric and every depth starts as the Euclidean one. The
paper's N(0, 0.01) start (`init_std`) makes T nearly constant instead, so the distance, and
with it the whole pair term, starts a thousandfold smaller per layer; from 2 DNN layers on
training never leaves that point (bench/RESULTS.md, section gmlfm-init).
"""

from __future__ import annotations

import torch
from torch import nn


class Identity(nn.Module):
    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v


class Mahalanobis(nn.Module):
    """t = L v, L = I at the start (init_std None) or N(0, init_std²) as in the paper."""

    def __init__(self, dim: int, init_std: float | None = None):
        super().__init__()
        start = torch.eye(dim) if init_std is None else torch.randn(dim, dim) * init_std
        self.L = nn.Parameter(start)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v @ self.L.T


class DeepTransform(nn.Module):
    """`layers` k×k tanh layers (0: the identity), each starting at W = I, b = 0 (init_std
    None) or at the paper's N(0, init_std²)."""

    def __init__(self, dim: int, layers: int, dropout: float, init_std: float | None = None):
        super().__init__()
        blocks: list[nn.Module] = []
        for layer in range(layers):
            if layer > 0:
                blocks.append(nn.Dropout(dropout))
            linear = nn.Linear(dim, dim)
            if init_std is None:
                nn.init.eye_(linear.weight)
                nn.init.zeros_(linear.bias)
            else:
                nn.init.normal_(linear.weight, 0.0, init_std)
                nn.init.normal_(linear.bias, 0.0, init_std)
            blocks += [linear, nn.Tanh()]
        self.net = nn.Sequential(*blocks)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v)
