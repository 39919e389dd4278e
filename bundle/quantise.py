"""Int8 rows that carry their own error: what the two-phase ranking's first pass reads.

A row x (float32) becomes codes q (int8, |q| ≤ L) and a scale σ = max|x| / L, so that
x = σ q + e. What makes a first pass over the codes *exact* later is that the error is not
estimated but measured: ‖e‖₂ is computed in float64 from the row itself and rounded up into
float32, and so is ‖x‖₂. The same function quantises a user's rows at request time, so both
sides of a dot product come with a measured error (bundle/two_phase.py holds the bound).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

USER_LEVELS = 127  # a user's codes in [-127, 127]: + 128, a uint8 for MatMulInteger's A
# an item's codes in [-63, 63]. Without AVX-512 VNNI, onnxruntime multiplies uint8 by int8
# with vpmaddubsw, which adds two products into an int16 and saturates: 255 · 127 · 2 does
# not fit (measured: products off by up to 10^6), 255 · 64 · 2 = 32,640 does. Exact integer
# products are what the two-phase bound stands on, so the items give up one bit.
ITEM_LEVELS = 63


@dataclass(frozen=True)
class QuantisedRows:
    codes: np.ndarray  # (M, k) int8
    scale: np.ndarray  # (M,) float32, the σ used as is: x ≈ scale · codes
    error: np.ndarray  # (M,) float32, at least ‖x − scale · codes‖₂
    norm: np.ndarray  # (M,) float32, at least ‖x‖₂


def quantise_rows(rows: np.ndarray, levels: int) -> QuantisedRows:
    """Per-row symmetric int8 codes in [-levels, levels] of a (M, k) float array, with
    measured errors."""
    x = np.asarray(rows, np.float64)
    scale = (np.abs(x).max(axis=1, initial=0.0) / levels).astype(np.float32)
    divisor = np.where(scale > 0, scale, 1.0).astype(np.float64)[:, None]
    codes = np.clip(np.rint(x / divisor), -levels, levels).astype(np.int8)
    # float32 times an int below 2^8 is exact in float64, so this is the error to 2^-53
    residual = x - scale.astype(np.float64)[:, None] * codes
    return QuantisedRows(codes, scale, round_up(np.linalg.norm(residual, axis=1)),
                         round_up(np.linalg.norm(x, axis=1)))


def round_up(values: np.ndarray) -> np.ndarray:
    """float64 -> a float32 above each value: the nearest float32 is within half a step of
    it, so one step up is at least half a step (2^-25 relative) above, more than the 2^-52
    by which float64 arithmetic can have missed the true value."""
    nearest = np.asarray(values, np.float64).astype(np.float32)
    return np.nextafter(nearest, np.float32(np.inf))
