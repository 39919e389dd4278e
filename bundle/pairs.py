"""Pair terms in numpy: the within-user part of a state, and GML-FM's distances.

A user row has a handful of columns, so its own pair term is computed by the definition,
Σ_{i<j} x_i x_j φ(i, j), with no decomposition to get wrong.
"""

from __future__ import annotations

import numpy as np

from bundle.layout import SQUARED


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
