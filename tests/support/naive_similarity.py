"""Item-to-item similarity by its definition, for tests to hold the fast paths to: the double
sum Σ_{l ∈ a} Σ_{m ∈ b} x_l x_m φ(l, m) over two item rows, φ written out per family from the
bundle's item-side tables (docs/math.md, Similar items), one pair of columns at a time."""

from __future__ import annotations

import functools

import numpy as np

from bundle import Bundle
from bundle import format as fmt


@functools.lru_cache(maxsize=8)
def _tables(bundle: Bundle) -> dict[str, np.ndarray]:
    tables = {name: np.asarray(bundle.item_table(f"feature_{name}"), np.float64)
              for name in fmt.feature_tables(bundle.scoring) if name != "bias"}
    if bundle.scoring.get("weighted"):
        tables["h"] = np.asarray(bundle.table("h"), np.float64)
    return tables


def naive_phi(bundle: Bundle, first: int, m: int) -> float:
    """φ(first, m) of two item-side features (first placed before m), in float64."""
    scoring, table = bundle.scoring, _tables(bundle)
    kind = scoring.get("kind")
    if kind == "transfm":
        return float(np.sum((table["a"][first] - table["v"][m]) ** 2))
    if kind != "gmlfm":  # FM, and the embeddings' inner product of NFM and the whole models
        return float(table["v"][first] @ table["v"][m])
    t_l, t_m = table["t"][first], table["t"][m]
    distance = {"manhattan": np.abs(t_l - t_m).sum(), "chebyshev": np.abs(t_l - t_m).max(),
                "cosine": t_l @ t_m}.get(scoring["distance"], np.sum((t_l - t_m) ** 2))
    weight = float(table["h"] @ (table["v"][first] * table["v"][m])) if "h" in table else 1.0
    return weight * float(distance)


def naive_sim(bundle: Bundle, a: tuple[np.ndarray, np.ndarray],
              b: tuple[np.ndarray, np.ndarray]) -> float:
    """sim(a, b) of two rows (idx, val), a's features before b's."""
    total = 0.0
    for f, x_f in zip(*a):
        for m, x_m in zip(*b):
            if x_f and x_m:
                total += float(x_f) * float(x_m) * naive_phi(bundle, int(f), int(m))
    return total
