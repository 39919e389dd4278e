"""The dense towers of NFM, DeepFM and xDeepFM, as the bundle stores them."""

from __future__ import annotations

import numpy as np

from bundle.loaded import Bundle

Layers = list[tuple[np.ndarray, np.ndarray]]


def dense_layers(bundle: Bundle) -> Layers:
    """(W (in, out), b (out,)) per layer, from the tables dense0_w, dense0_b, dense1_w, ..."""
    return [(bundle.table(f"dense{i}_w"), bundle.table(f"dense{i}_b"))
            for i in range(bundle.scoring["dense_layers"])]


def mlp(x: np.ndarray, layers: Layers) -> np.ndarray:
    """ReLU between layers, none after the last: (..., in) -> (..., out)."""
    for i, (w, b) in enumerate(layers):
        x = x @ w + b
        if i < len(layers) - 1:
            x = np.maximum(x, 0.0)
    return x
