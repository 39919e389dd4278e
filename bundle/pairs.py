"""Pair terms in numpy: each family's pair value φ(i, j), a row's own pair term, GML-FM's distances.

A user row, or an item row, has a handful of columns, so its own pair term is computed by the
definition, Σ_{i<j} x_i x_j φ(i, j), with no decomposition to get wrong. φ reads per-feature
tables of either side (`SideTables`): the user side's for a user state, the item side's for an
item's constant part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from bundle.layout import SQUARED


def _none() -> np.ndarray:
    return np.zeros((0, 0), np.float32)


@dataclass(frozen=True)
class SideTables:
    """One side's per-feature tables, by local feature index; empty where a family has none
    (fmt.feature_tables names those it has)."""

    bias: np.ndarray  # (n,) w_i
    v: np.ndarray = field(default_factory=_none)  # (n, k) embeddings
    t: np.ndarray = field(default_factory=_none)  # (n, k') GML-FM's T(v); unit u for cosine
    a: np.ndarray = field(default_factory=_none)  # (n, k) TransFM's a = v + v', the earlier

    @staticmethod
    def load(table: Callable[[str], np.ndarray], prefix: str, names: tuple[str, ...]
             ) -> SideTables:
        """The tables `names` (bias, v, t, a) read as table(prefix + name)."""
        return SideTables(**{name: table(prefix + name) for name in names})


@dataclass(frozen=True)
class PairValue:
    """φ(i, j) of a family, feature i placed before feature j: FM's v_i · v_j, TransFM's
    |a_i − v_j|², GML-FM's hᵀ(v_i ⊙ v_j) D(t_i, t_j) (weight 1 without h)."""

    kind: str  # fm | transfm | gmlfm
    distance: str = ""  # gmlfm's
    h: np.ndarray | None = None  # gmlfm's weight, None without it

    def __call__(self, first: SideTables, idx_a: np.ndarray, second: SideTables,
                 idx_b: np.ndarray) -> np.ndarray:
        """φ (B, A, C) of first's features idx_a (B, A), each before second's idx_b (B, C)."""
        if self.kind == "fm":
            return np.einsum("bik,bjk->bij", first.v[idx_a], second.v[idx_b])
        if self.kind == "transfm":
            return distance(first.a[idx_a][:, :, None], second.v[idx_b][:, None], "euclidean")
        weight = 1.0 if self.h is None else pair_weights(
            first.v[idx_a][:, :, None], second.v[idx_b][:, None], self.h)
        return weight * distance(first.t[idx_a][:, :, None], second.t[idx_b][:, None],
                                 self.distance)


def within_pairs(x: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Σ_{i<j} x_i x_j φ_ij: x (B, R), φ (B, R, R) -> (B,). Column order defines i < j."""
    upper = np.triu(np.ones(phi.shape[-2:], bool), 1)
    return np.einsum("bi,bj,bij->b", x, x, np.where(upper, phi, 0.0))


def distance(t_i: np.ndarray, t_j: np.ndarray, name: str) -> np.ndarray:
    """GML-FM's D on transformed vectors (broadcast over leading axes, reduced over the last).

    Cosine expects unit vectors (the bundle stores u = t / |t| for it), so D is u_i · u_j.
    """
    if name in SQUARED:
        return np.square(t_i - t_j).sum(-1)
    if name == "cosine":
        return (t_i * t_j).sum(-1)
    if name == "manhattan":
        return np.abs(t_i - t_j).sum(-1)
    if name == "chebyshev":
        return np.abs(t_i - t_j).max(-1)
    raise ValueError(f"unknown distance {name!r}")


def pair_weights(v_i: np.ndarray, v_j: np.ndarray, h: np.ndarray | None) -> np.ndarray | float:
    """GML-FM's transformation weight hᵀ(v_i ⊙ v_j), or 1 for a model without it."""
    return 1.0 if h is None else (v_i * v_j * h).sum(-1)
