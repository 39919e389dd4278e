"""Exact top n in two passes: int8 codes with a proved error bound, then float32 on a shortlist.

The float32 path (model.onnx) reads every item table in float32. The two-phase graph
(two_phase.onnx, built by training/export/two_phase_graph.py) reads int8 codes of the same
tables instead, four times fewer bytes, and gives every item an approximate score ŝ_i and a
bound E_i with |s_i − ŝ_i| ≤ E_i, where s_i is the score the float32 path computes (its
rounding included). It keeps the K items of highest upper bound ŝ + E, rescores them in
float32 exactly as model.onnx does, and returns their top n together with a certificate:

    certified  ⇔  the K-th highest upper bound < L, the n-th highest lower bound ŝ − E
                  among the K (or fewer than K items are left at all)

Proof that a certified answer is the float32 path's: n shortlisted items have s ≥ their
lower bound ≥ L; every item outside the shortlist has s ≤ its upper bound ≤ the K-th upper
bound < L. So every item outside is beaten, strictly, by n items: the float32 top n lies
within the shortlist, whose float32 scores are computed by the same operators on the same
values, and ranked by the same TopK (ties to the lower catalog position: the shortlist is
put in catalog order first). An uncertified answer is not used: the scorer runs model.onnx.

The bound, one dot product. A user row u is quantised at request time like the items
(bundle/quantise.py): u = α ã + δ, an item row v = σ q + e, ã and q integer. Then
    u·v − ασ (ã·q) = u·e + σ δ·q,
    |u·e| ≤ ‖u‖ ε,     |σ δ·q| ≤ ‖δ‖ ‖σq‖ ≤ ‖δ‖ (ν + ε)
with ε ≥ ‖e‖ and ν ≥ ‖v‖ measured at export, ‖u‖ and ‖δ‖ at request time, so
    |u·v − ασ (ã·q)| ≤ A ε + B ν,   A = ‖u‖ + ‖δ‖,  B = ‖δ‖.                          (1)
ã·q is an exact int32 (|ã·q| ≤ 127 · 63 · k < 2^24, so also exact as a float32; why
the items' codes stop at 63: bundle/quantise.py).

Linear family (fm, transfm, gmlfm without weight): score = part + const_i + query·m_i, and
(1) with u = query bounds it: Q_i = A ε_i + B ν_i.

Feature pairs, squared distances with the transformation weight (GML-FM dnn, euclidean,
mahalanobis): per item-side feature l, with user rows a, b, hv_j, t_j and weights x_j,
    g_l = s_l (a·v_l) + b·v_l − 2 Σ_j x_j (hv_j·v_l)(t_j·t_l),   s_l = ‖t_l‖² ≥ 0.
Each dot product has its bound (1): E_r = A_r ε_l + B_r ν_l on v (rows r = a, b, hv_j) and
F_j = A'_j ε'_l + B'_j ν'_l on t. For a product, with D = hv_j·v_l, T = t_j·t_l,
    |DT − D̂T̂| ≤ |D| |T − T̂| + |T̂| |D − D̂| ≤ ‖hv_j‖ ν_l F_j + (‖t_j‖ ν'_l + F_j) E_hv_j,
so |g_l − ĝ_l| ≤ s_l E_a + E_b + 2 Σ_j |x_j| (that), which expands into eight products of
per-feature numbers (sε, sν, ε, ν, νε', νν', ν'ε, εε') with per-user coefficients ≥ 0.
An item's score is const_i + Σ_w val_iw g_{l_iw}, so its bound is Σ_w |val_iw| × that: the
export sums each product over the item's features into a (P, N) table Ψ, and the request's
bound is the (1, P) × (P, N) product λ Ψ. No per-item work beyond one small matrix product.

Rounding. Both paths compute in float32. Each of their values is a sum of terms whose
absolute values add up to at most Mag_i (for the linear family |const_i| + ‖query‖ ν_i; for
feature pairs |const_i| + Σ_w |val_iw| (s_l ‖a‖ ν_l + ‖b‖ ν_l + 2 Σ_j |x_j| ‖hv_j‖ ‖t_j‖ ν_l ν'_l)),
and the longest chain of roundings is shorter than 2k + R + W + 16 operations, so each
path's rounding is below γ_n Mag_i with the textbook γ_n = n u / (1 − n u), u = 2^-24. The
bound used is E_i = (1 + γ) ((1 + γ) Q_i + γ Mag_i) with γ = (4k + 8R + 4W + 64) u, more
than both paths' rounding together plus that of computing E_i, ŝ_i ± E_i themselves; every
quantity entering it is rounded up (bundle/quantise.py), and λ, Ψ ≥ 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bundle import format as fmt
from bundle.layout import SQUARED, StateLayout
from bundle.quantise import ITEM_LEVELS, USER_LEVELS, quantise_rows, round_up

# catalogs from this many items rank a lone user through two_phase.onnx (OnnxScorer; the
# service's GMLREC_TWO_PHASE_ITEMS). bench/two_phase.py over HTTP: at 100,000 items
# GML-FM-dnn gained 1.03-1.31x and FM 0.86-1.11x (the passes over every item cost about what
# the float32 bytes it saves do), at 1,000,000 1.17-1.61x and 1.01-1.42x
TWO_PHASE_FROM_ITEMS = 200_000
ZERO_POINT = 128  # user codes travel as uint8 = code + 128 (MatMulInteger's a_zero_point)
UNIT_ROUNDOFF = 2.0 ** -24


def eligible(scoring: Mapping[str, Any]) -> bool:
    """The families with a proved bound; every other keeps the float32 path alone."""
    if scoring.get("path") != fmt.SPLIT:
        return False
    if scoring["family"] == fmt.LINEAR:
        return True
    return scoring["family"] == fmt.FEATURE_PAIRS and scoring["weighted"] \
        and scoring["distance"] in SQUARED \
        and scoring.get("pair_form", fmt.PAIR_ROWS) == fmt.PAIR_ROWS  # what the proof bounds


def gamma(scoring: Mapping[str, Any]) -> float:
    """The rounding allowance (module doc): twice the textbook γ_n and then some."""
    k, width = scoring["dim"], scoring["user_width"]
    return (4 * k + 8 * width + 4 * scoring["item_width"] + 64) * UNIT_ROUNDOFF


# ---- export: the item side ----------------------------------------------------------------
def item_arrays(scoring: Mapping[str, Any], item_tables: Mapping[str, np.ndarray],
                item_idx: np.ndarray, item_val: np.ndarray,
                const: np.ndarray) -> dict[str, np.ndarray]:
    """The two-phase graph's tables, by item-table name (items/<name>.npy): int8 codes stored
    (k, M) for MatMulInteger, the float32 factors that turn their products into scores, and
    the bound basis Ψ (P, N)."""
    weight = np.abs(np.asarray(item_val, np.float64))
    if scoring["family"] == fmt.LINEAR:
        m = quantise_rows(item_tables["matrix"], ITEM_LEVELS)
        basis = np.stack([m.error, m.norm, np.abs(const)]).astype(np.float64)
        return {"q_matrix": np.ascontiguousarray(m.codes.T), "q_matrix_scale": m.scale,
                "bound_basis": round_up(basis)}
    v, t = (quantise_rows(item_tables[name], ITEM_LEVELS) for name in ("feature_v", "feature_t"))
    s = item_tables["feature_s"].astype(np.float64)
    eps, nu, eps_t, nu_t = (a.astype(np.float64) for a in (v.error, v.norm, t.error, t.norm))
    per_feature = np.stack([s * eps, s * nu, eps, nu, nu * eps_t, nu * nu_t, nu_t * eps,
                            eps * eps_t])  # (8, M): the products of the module doc
    per_item = np.einsum("nw,pnw->pn", weight, per_feature[:, item_idx])
    mix = np.stack([item_tables["feature_s"] * v.scale, v.scale])  # s_l σ_l, σ_l
    return {"q_v": np.ascontiguousarray(v.codes.T), "q_t": np.ascontiguousarray(t.codes.T),
            "q_mix": mix.astype(np.float32), "q_pair": (v.scale * t.scale).astype(np.float32),
            "bound_basis": round_up(np.concatenate([per_item, np.abs(const)[None]]))}


# ---- request: the user side ---------------------------------------------------------------
def user_feed(scoring: Mapping[str, Any], state: np.ndarray) -> dict[str, np.ndarray]:
    """The two-phase graph's user inputs for one state (D,): the user's rows as uint8 codes,
    the factors that scale their products (`mix`) and the bound's coefficients λ (`bound`).
    O(R·k): a quantisation of the user's few rows."""
    layout, g = StateLayout.of(scoring), gamma(scoring)
    state = state[None]
    if scoring["family"] == fmt.LINEAR:
        query = layout.view(state, "query", 1, -1)[0]
        u = _user_rows(query)
        a, b = u["big"][0], u["small"][0]
        q = np.array([a, b, 0.0])
        mag = np.array([0.0, u["norm"][0], 1.0])
        return {fmt.USER_V: u["codes"], fmt.MIX: u["scale"][None].astype(np.float32),
                fmt.BOUND: _coefficients(q, mag, g)}
    width = scoring["user_width"]
    rows_v = np.concatenate([layout.view(state, "a", 1, -1)[0], layout.view(state, "b", 1, -1)[0],
                             layout.view(state, "hv", width, -1)[0]])
    uv, ut = _user_rows(rows_v), _user_rows(layout.view(state, "t", width, -1)[0])
    x = np.abs(layout.view(state, "x", width)[0].astype(np.float64))
    big, small = uv["big"][2:], uv["small"][2:]  # A_j, B_j of the hv rows
    big_t, small_t = ut["big"], ut["small"]
    hv_norm, t_norm = uv["norm"][2:], ut["norm"]
    q = np.array([uv["big"][0], uv["small"][0], uv["big"][1], uv["small"][1],
                  2 * x @ (big_t * (hv_norm + small)),
                  2 * x @ (hv_norm * small_t + t_norm * small + small * small_t),
                  2 * x @ (big * (t_norm + small_t)),
                  2 * x @ (big * big_t), 0.0])
    mag = np.array([0.0, uv["norm"][0], 0.0, uv["norm"][1], 0.0,
                    2 * x @ (hv_norm * t_norm), 0.0, 0.0, 1.0])
    signed_x = layout.view(state, "x", width)[0].astype(np.float64)
    mix = np.concatenate([uv["scale"][:2], -2 * signed_x * uv["scale"][2:] * ut["scale"]])
    return {fmt.USER_V: uv["codes"], fmt.USER_T: ut["codes"],
            fmt.MIX: mix[None].astype(np.float32), fmt.BOUND: _coefficients(q, mag, g)}


def _user_rows(rows: np.ndarray) -> dict[str, np.ndarray]:
    """A user's rows (r, k) quantised: uint8 codes, α, and A = ‖u‖ + ‖δ‖, B = ‖δ‖, ‖u‖
    (float64, from rounded-up float32 norms)."""
    quantised = quantise_rows(rows, USER_LEVELS)
    norm, small = quantised.norm.astype(np.float64), quantised.error.astype(np.float64)
    return {"codes": (quantised.codes.astype(np.int16) + ZERO_POINT).astype(np.uint8),
            "scale": quantised.scale.astype(np.float64), "norm": norm,
            "big": norm + small, "small": small}


def _coefficients(q: np.ndarray, mag: np.ndarray, g: float) -> np.ndarray:
    """λ (1, P) float32, rounded up: (1 + γ)((1 + γ) q + γ mag) (module doc)."""
    return round_up((1 + g) * ((1 + g) * q + g * mag))[None]
