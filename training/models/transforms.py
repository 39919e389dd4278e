"""Feature-vector transforms T(v) of GML-FM: the metric is learned by learning T.

identity     T(v) = v                         (Euclidean)
linear       T(v) = L v, M = LᵀL              (Mahalanobis; starts at L = I, i.e. Euclidean)
mlp          T(v) = tanh(W_L … tanh(W_1 v + b_1) … + b_L), dropout between layers (DNN)
"""

from __future__ import annotations

import torch
from torch import nn


class Identity(nn.Module):
    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v


class Mahalanobis(nn.Module):
    """t = L v. L starts as the identity so training begins from the Euclidean metric; a
    N(0, 0.01) L would shrink every distance by ~1e-3 and stall the first epochs."""

    def __init__(self, dim: int):
        super().__init__()
        self.L = nn.Parameter(torch.eye(dim))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v @ self.L.T


class DeepTransform(nn.Module):
    """`layers` k×k tanh layers; 0 layers is the identity (Euclidean)."""

    def __init__(self, dim: int, layers: int, dropout: float, init_std: float):
        super().__init__()
        blocks: list[nn.Module] = []
        for layer in range(layers):
            if layer > 0:
                blocks.append(nn.Dropout(dropout))
            linear = nn.Linear(dim, dim)
            nn.init.normal_(linear.weight, 0.0, init_std)
            nn.init.normal_(linear.bias, 0.0, init_std)
            blocks += [linear, nn.Tanh()]
        self.net = nn.Sequential(*blocks)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.net(v)
