"""Blocks of similar items with one upper bound each: what lets a top n read less than the catalog.

At export the catalog is cut into blocks of similar items (`partition`), and each block keeps
a few numbers (`summaries`) from which, for any user state, one upper bound U_b on the score
model.onnx computes for every item of the block follows in O(W R k) (`bounds`). A search then
scores blocks exactly in descending bound and stops once the next bound is below the n-th
best exact score (bundle/block_ranker.py). Families: those the two-phase path covers
(two_phase.eligible), with its rounding allowance γ.

Both families' scores are sums of dot products between the user's rows and an item's, so a
centre c and a radius r ≥ max ‖z − c‖ of each item-side vector z over a block bound them:
    u·z = u·c + u·(z − c) ≤ u·c + ‖u‖ r                                   (Cauchy–Schwarz)

Linear family (score = const_i + query·m_i): per block the largest const, the centre c and
radius r of the rows m_i, so every item's real score is at most
    max const + query·c + ‖query‖ r.

Feature pairs (GML-FM with its weight, squared distances; bundle/two_phase.py): an item's
real score is const_i + Σ_w val_w g_{l_w} with
    g_l = s_l (a·v_l) + b·v_l − 2 Σ_j x_j (hv_j·v_l)(t_j·t_l).
Per item column w write p = val_w v_l, q = val_w s_l v_l and t = t_l (l = the item's feature
in that column). Then val_w g_l = a·q + b·p − 2 pᵀ C t with the user's C = Σ_j x_j hv_j t_jᵀ.
Per block and column: the centres c_p, c_q, c_t and radii r_p, r_q, r_t over the block's
items. For the bilinear part, with p = c_p + d, t = c_t + e (‖d‖ ≤ r_p, ‖e‖ ≤ r_t):
    pᵀCt = c_pᵀ C c_t + dᵀ C c_t + c_pᵀ C e + dᵀ C e
         ≥ c_pᵀ C c_t − r_p ‖C c_t‖ − r_t ‖Cᵀ c_p‖ − r_p r_t ‖C‖_F         (‖C‖₂ ≤ ‖C‖_F)
so every item's real score is at most
    max const + Σ_w [a·c_q + b·c_p − 2 c_pᵀ C c_t
                     + ‖a‖ r_q + ‖b‖ r_p + 2 (r_p ‖C c_t‖ + r_t ‖Cᵀ c_p‖ + r_p r_t ‖C‖_F)].
C (k × k') is formed once a request, O(R k k'); then C c_t, Cᵀ c_p and c_pᵀ C c_t cost a
block O(W k k').

Rounding. model.onnx computes in float32; bundle/two_phase.py shows its score differs from
the real one by at most γ Mag_i with the same γ (two_phase.gamma, already twice the textbook
γ_n and then some) and Mag_i = |const_i| + ‖query‖ ν_i (linear) or |const_i| + Σ_w |val_w|
(s_l ‖a‖ ν_l + ‖b‖ ν_l + 2 S ν_l ν'_l), S = Σ_j |x_j| ‖hv_j‖ ‖t_j‖ (feature pairs; ν, ν' the
norms of v_l, t_l). Per block the maxima over its items of |const|, Σ_w |val| s ν, Σ_w |val| ν
and Σ_w |val| ν ν' (or ν) are stored, so γ times their combination is at least γ Mag_i for
every item. The bound itself is evaluated in float64 from float32 inputs: each of its sums is
off by at most d 2^-53 times the sum of its terms' absolute values, and `Abs` (the same
expression with every term replaced by an upper bound on its absolute value, through ‖·‖
and S ≥ ‖C‖₂) bounds those, so adding η Abs, η = 2^-30, covers it; the stored radii and
maxima were computed in float64 and pushed up by the same η (relative, and relative to the
largest ‖z‖ of the block).

A ranker evaluates it in float32, twice as fast (`for_requests`): each centre is rounded to
float32 and its radius grown by the distance moved (the ball still holds every item), the
radii, norms and maxima rounded up, and η becomes η₃₂ = 2 (4k + 4k' + 16 W + 64) 2^-24, at
least twice float32's γ for the longest chain of operations in the bound, so η₃₂ Abs still
covers the evaluation's error (and Abs's own). So

    U_b = max const + centre terms + radius terms + γ Mag_b + η Abs_b
        ≥ every score model.onnx computes for an item of block b.

A state with a non-finite value gives non-finite bounds; the search then answers nothing and
the caller takes the full pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bundle import format as fmt
from bundle.layout import StateLayout
from bundle.two_phase import gamma

SLACK = 2.0 ** -30  # η of the module doc
POWER_STEPS = 6  # power iterations for a split direction
SPLIT_SAMPLE = 4096  # items a split direction is estimated from
SHARED_SHARE = 1 / 16  # a column with at most this share of the catalog's distinct features


def block_items(n_items: int) -> int:
    """Items per block: about √N / 4 (4,000 blocks of 250 at a million items, 169 of 10 at
    MovieLens' 1,682), between 8 and 512. Smaller blocks bound tighter but cost a bound each
    per request: at a million items, halving or doubling this read 4.08% or 10.43% of
    catalog (b) instead of 6.83%, for about the same time (bench.prune)."""
    return int(np.clip(round(np.sqrt(max(n_items, 1)) / 4), 8, 512))


# ---- export: the partition --------------------------------------------------------------
def partition(x: np.ndarray, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cut the rows of x (N, d) into blocks of at most `size` similar rows: a tree of splits,
    each at the median of the rows' projection on their principal direction (what 2-means
    does along one axis, at O(N d) a level). Returns the positions block by block, ascending
    within each block (order, (N,) int64), and where each block starts (offsets, (B + 1,))."""
    rng = np.random.default_rng(seed)
    n = len(x)
    order = np.arange(n, dtype=np.int64)
    pending, done = [(0, n)], []
    while pending:
        start, stop = pending.pop()
        if stop - start <= size:
            done.append((start, stop))
            continue
        members = order[start:stop]
        rows = x[members]  # float32: a split needs no more (the bounds are taken apart)
        pick = rows[rng.choice(len(rows), min(len(rows), SPLIT_SAMPLE), replace=False)]
        pick = pick.astype(np.float64)
        mean = pick.mean(0)
        centred = pick - mean
        direction = rng.standard_normal(x.shape[1])
        for _ in range(POWER_STEPS):
            direction = centred.T @ (centred @ direction)
            direction /= max(float(np.linalg.norm(direction)), 1e-300)
        projection = rows @ np.asarray(direction, np.float32)
        half = size * (-(-(stop - start) // size) // 2)  # whole blocks on the left
        split = np.argpartition(projection, half)
        order[start:stop] = members[split]
        pending += [(start, start + half), (start + half, stop)]
    done.sort()
    for start, stop in done:
        order[start:stop] = np.sort(order[start:stop])
    offsets = np.array([0, *(stop for _, stop in done)], np.int64)
    return order, offsets


def item_vectors(scoring: Mapping[str, Any], tables: Mapping[str, np.ndarray],
                 idx: np.ndarray, val: np.ndarray, const: np.ndarray) -> np.ndarray:
    """What items are partitioned by (float32, (N, d)): the vectors the bound reads,
    concatenated (const, then m; or const, then p, q, t of each column)."""
    if scoring["family"] == fmt.LINEAR:
        return np.concatenate([const[:, None], tables["matrix"]], 1).astype(np.float32)
    parts = [const[:, None].astype(np.float32)]
    for w in range(idx.shape[1]):
        parts += [a.astype(np.float32) for a in _column(tables, idx[:, w], val[:, w])]
    return np.concatenate(parts, 1)


def _column(tables: Mapping[str, np.ndarray], idx: np.ndarray, val: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p = val v_l, q = val s_l v_l, t = t_l of one item column (float64; p exact)."""
    v = np.asarray(tables["feature_v"], np.float64)[idx]
    value = np.asarray(val, np.float64)[:, None]
    s = np.asarray(tables["feature_s"], np.float64)[idx][:, None]
    return value * v, value * s * v, np.asarray(tables["feature_t"], np.float64)[idx]


# ---- export: the summaries --------------------------------------------------------------
def item_arrays(scoring: Mapping[str, Any], tables: Mapping[str, np.ndarray],
                idx: np.ndarray, val: np.ndarray, const: np.ndarray, reads: Sequence[str],
                size: int | None = None) -> dict[str, np.ndarray]:
    """The blocks of an eligible bundle's catalog, by name (blocks/<name>.npy): `order` and
    `offsets` (partition), what `bounds` reads (module doc), and the slabs of the item
    tables `reads` that blocks.onnx scores from (`slabs`)."""
    n = len(const)
    order, offsets = partition(item_vectors(scoring, tables, idx, val, const),
                               size or block_items(n))
    return {"order": order, "offsets": offsets,
            **summaries(scoring, tables, idx, val, const, order, offsets),
            **slabs(scoring, tables, idx, val, const, slots(order, offsets), reads)}


def slots(order: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """(B, S) the catalog positions of each block's items, in block order, -1 where a block
    shorter than the longest (S items) is padded."""
    sizes = np.diff(offsets)
    out = np.full((len(sizes), int(sizes.max(initial=0))), -1, np.int64)
    block = np.repeat(np.arange(len(sizes)), sizes)
    out[block, np.arange(len(order)) - offsets[block]] = order
    return out


def shared_columns(idx: np.ndarray) -> list[int]:
    """The item columns whose features are few next to the catalog (a category, a genre
    slot: fewer distinct than SHARED_SHARE of the items): blocks.onnx computes their gains
    once per distinct feature and gathers them per item, instead of reading rows per item."""
    return [w for w in range(idx.shape[1])
            if len(np.unique(idx[:, w])) <= SHARED_SHARE * len(idx)]


def valued_columns(val: np.ndarray) -> list[int]:
    """The item columns whose values are not all 1: only their gains are multiplied by a
    value (x · 1 is x, so a categorical column's product would change no bit)."""
    return [w for w in range(val.shape[1]) if not np.all(np.asarray(val[:, w]) == 1)]


def slabs(scoring: Mapping[str, Any], tables: Mapping[str, np.ndarray], idx: np.ndarray,
          val: np.ndarray, const: np.ndarray, at: np.ndarray,
          reads: Sequence[str]) -> dict[str, np.ndarray]:
    """What blocks.onnx reads for each block's items, copied in block order: (B, S, ...)
    per array, the padding slots zero. `slab_const`, `slab_val` (B, S, the columns of
    `valued_columns`, where any); for the columns of the items' own features,
    `slab_<table>` for each table read (an item's rows one after another); and for each
    shared column w (`shared_columns`), `shared_<w>` its distinct features and
    `slab_index_<w>` (B, S) each item's among them.

    Why a copy: read in place, a block's items are rows scattered over the catalog tables,
    and onnxruntime's Gather copies one row at a time (at a million items, 100 to 300 ns an
    item, against 18 to 29 for model.onnx's whole pass: bench.prune). As a slab, a block is
    one contiguous copy. The values are the tables' own, so the scores keep model.onnx's bits;
    the cost is the disk and page cache the copies take (about the item tables' size again)."""
    pad = at < 0
    take = np.where(pad, 0, at)

    def laid(rows: np.ndarray) -> np.ndarray:
        out = np.asarray(rows)[take]
        out[pad] = 0
        return out

    out = {"slab_const": laid(np.asarray(const, np.float32))}
    if scoring["family"] == fmt.LINEAR:
        return out | {f"slab_{name}": laid(np.asarray(tables[name], np.float32))
                      for name in reads}
    shared = shared_columns(idx)
    own = [w for w in range(idx.shape[1]) if w not in shared]
    if weighted := valued_columns(val):
        out["slab_val"] = laid(np.asarray(val, np.float32)[:, weighted])  # (B, S, W_valued)
    if own:
        features = laid(idx[:, own])  # (B, S, W_own); padding reads feature 0, weighted by 0
        for name in reads:
            rows = np.asarray(tables[name], np.float32)[features]  # (B, S, W_own[, k])
            out[f"slab_{name}"] = rows.reshape(at.shape[0], -1, *rows.shape[3:])
    for w in shared:
        distinct, local = np.unique(idx[:, w], return_inverse=True)
        out[f"shared_{w}"] = distinct.astype(np.int64)
        out[f"slab_index_{w}"] = laid(local.astype(np.int32))
    return out


def summaries(scoring: Mapping[str, Any], tables: Mapping[str, np.ndarray], idx: np.ndarray,
              val: np.ndarray, const: np.ndarray, order: np.ndarray,
              offsets: np.ndarray) -> dict[str, np.ndarray]:
    """Per block (float64): the largest const, centres, radii, the centres' norms and the
    rounding maxima of the module doc."""
    starts = offsets[:-1]
    c = np.asarray(const, np.float64)[order]
    out = {"const_max": np.maximum.reduceat(c, starts)}
    if scoring["family"] == fmt.LINEAR:
        m = np.asarray(tables["matrix"], np.float64)[order]
        centre, radius, reach = _ball(m, starts, offsets)
        nu = np.linalg.norm(m, axis=1)
        out |= {"centre": centre, "radius": radius[:, None], "centre_norm": reach[:, None],
                "mag": np.stack([np.maximum.reduceat(np.abs(c), starts),
                                 np.maximum.reduceat(nu, starts)], 1)}
        return {k: _up(v) if k in ("radius", "mag") else v for k, v in out.items()}
    v_norm = np.linalg.norm(np.asarray(tables["feature_v"], np.float64), axis=1)
    t_norm = np.linalg.norm(np.asarray(tables["feature_t"], np.float64), axis=1)
    s = np.asarray(tables["feature_s"], np.float64)
    weight, cols = np.abs(np.asarray(val, np.float64)[order]), np.asarray(idx)[order]
    centres: dict[str, list[np.ndarray]] = {"p": [], "q": [], "t": []}
    radii, norms = [], []
    for w in range(cols.shape[1]):
        p, q, t = _column(tables, cols[:, w], np.asarray(val)[order][:, w])
        balls = [_ball(z, starts, offsets) for z in (p, q, t)]
        for name, ball in zip("pqt", balls):
            centres[name].append(ball[0])
        radii.append(np.stack([ball[1] for ball in balls], 1))
        norms.append(np.stack([ball[2] for ball in balls], 1))
    per_item = [np.abs(c),
                (weight * (s * v_norm)[cols]).sum(1),
                (weight * v_norm[cols]).sum(1),
                (weight * (v_norm * t_norm)[cols]).sum(1)]
    out |= {f"centre_{name}": np.stack(rows, 1) for name, rows in centres.items()}
    out |= {"radius": _up(np.stack(radii, 1)), "centre_norm": np.stack(norms, 1),
            "mag": _up(np.stack([np.maximum.reduceat(a, starts) for a in per_item], 1))}
    return out


def _ball(z: np.ndarray, starts: np.ndarray, offsets: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per block of the rows z (in block order): the mean as centre, a radius pushed up past
    float64's error (relative, and relative to the block's largest row), the centre's norm."""
    sizes = np.diff(offsets)
    centre = np.add.reduceat(z, starts, axis=0) / sizes[:, None]
    block = np.repeat(np.arange(len(sizes)), sizes)
    distance = np.linalg.norm(z - centre[block], axis=1)
    largest = np.maximum.reduceat(np.linalg.norm(z, axis=1), starts)
    radius = np.maximum.reduceat(distance, starts)
    return centre, radius * (1 + SLACK) + SLACK * largest, np.linalg.norm(centre, axis=1)


def _up(values: np.ndarray) -> np.ndarray:
    return values * (1 + SLACK)


def for_requests(scoring: Mapping[str, Any], blocks: Mapping[str, np.ndarray]
                 ) -> dict[str, np.ndarray]:
    """The summaries in float32, for `bounds` to evaluate in float32 (module doc): centres
    rounded, each radius grown by its centre's move, the rest rounded up."""
    out = {"const_max": _up32(blocks["const_max"]), "mag": _up32(blocks["mag"])}
    names = ["centre"] if scoring["family"] == fmt.LINEAR else ["centre_p", "centre_q",
                                                               "centre_t"]
    radii, norms = [], []
    for j, name in enumerate(names):
        centre = np.asarray(blocks[name], np.float64)
        rounded = centre.astype(np.float32)
        moved = np.linalg.norm(centre - rounded, axis=-1)
        radii.append(_up32((blocks["radius"][..., j] + moved) * (1 + SLACK)))
        norms.append(_up32(np.linalg.norm(rounded.astype(np.float64), axis=-1) * (1 + SLACK)))
        out[name] = rounded
    return out | {"radius": np.stack(radii, -1), "centre_norm": np.stack(norms, -1)}


def _up32(values: np.ndarray) -> np.ndarray:
    """float64 -> the nearest float32 at least as large."""
    values = np.asarray(values, np.float64)
    rounded = values.astype(np.float32)
    return np.where(rounded < values, np.nextafter(rounded, np.float32(np.inf)), rounded)


def _slack(scoring: Mapping[str, Any], blocks: Mapping[str, np.ndarray]) -> float:
    """η for the summaries' precision: 2^-30 in float64, η₃₂ in float32 (module doc)."""
    if blocks["const_max"].dtype != np.float32:
        return SLACK
    if scoring["family"] == fmt.LINEAR:
        chain = 8 * blocks["centre"].shape[-1] + 64
    else:
        chain = (4 * blocks["centre_p"].shape[-1] + 4 * blocks["centre_t"].shape[-1]
                 + 16 * blocks["centre_p"].shape[1] + 64)
    return 2 * chain * 2.0 ** -24


# ---- request: the bounds ----------------------------------------------------------------
def bounds(scoring: Mapping[str, Any], blocks: Mapping[str, np.ndarray],
           state: np.ndarray) -> np.ndarray:
    """U_b (B,) for one state (D,), in the summaries' precision (float64 as exported,
    float32 from `for_requests`): at least every score (before the user's own part)
    model.onnx computes for an item of block b (module doc)."""
    layout, g, eta = StateLayout.of(scoring), gamma(scoring), _slack(scoring, blocks)
    s = np.asarray(state, blocks["const_max"].dtype)[None]
    const_max = blocks["const_max"]
    radius, reach, mag = blocks["radius"], blocks["centre_norm"], blocks["mag"]
    if scoring["family"] == fmt.LINEAR:
        query = layout.view(s, "query", -1)[0]
        size = float(np.linalg.norm(query))
        centre = blocks["centre"] @ query
        spread = size * radius[:, 0]
        rounding = g * (mag[:, 0] + size * mag[:, 1])
        total = np.abs(const_max) + size * (reach[:, 0] + radius[:, 0]) + rounding
        return const_max + centre + spread + rounding + eta * total
    width = scoring["user_width"]
    a, b = layout.view(s, "a", -1)[0], layout.view(s, "b", -1)[0]
    hv, t = layout.view(s, "hv", width, -1)[0], layout.view(s, "t", width, -1)[0]
    x = layout.view(s, "x", width)[0]
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    big_s = float(np.abs(x) @ (np.linalg.norm(hv, axis=1) * np.linalg.norm(t, axis=1)))
    cross = (x[:, None] * hv).T @ t  # the user's C (k, k'), once a request
    frobenius = float(np.linalg.norm(cross))
    c_p, c_q, c_t = blocks["centre_p"], blocks["centre_q"], blocks["centre_t"]  # (B, W, k)
    shape, k = c_p.shape[:2], c_p.shape[2]  # flat (B W, k) products: one BLAS call each
    p_flat = c_p.reshape(-1, k)
    c_times_t = c_t.reshape(-1, t.shape[1]) @ cross.T  # (B W, k): C c_t per block column
    centre = (c_q.reshape(-1, k) @ a + p_flat @ b
              - 2 * np.einsum("ij,ij->i", p_flat, c_times_t)).reshape(shape)
    c_ct = _norms(c_times_t).reshape(shape)  # ‖C c_t‖
    ct_cp = _norms(p_flat @ cross).reshape(shape)  # ‖Cᵀ c_p‖
    r_p, r_q, r_t = radius[..., 0], radius[..., 1], radius[..., 2]
    spread = na * r_q + nb * r_p + 2 * (r_p * c_ct + r_t * ct_cp + r_p * r_t * frobenius)
    rounding = g * (mag[:, 0] + na * mag[:, 1] + nb * mag[:, 2] + 2 * big_s * mag[:, 3])
    n_p, n_q, n_t = reach[..., 0], reach[..., 1], reach[..., 2]
    total = np.abs(const_max) + rounding + (
        na * (n_q + r_q) + nb * (n_p + r_p) + 2 * big_s * (n_p + r_p) * (n_t + r_t)
        + 2 * (r_p * c_ct + r_t * ct_cp + r_p * r_t * frobenius)).sum(1)
    return const_max + (centre + spread).sum(1) + rounding + eta * total


def _norms(rows: np.ndarray) -> np.ndarray:
    """The Euclidean norm of each row (B, k) -> (B,)."""
    return np.sqrt(np.einsum("ij,ij->i", rows, rows))
