"""Every registered model's score written as its definition: one loop per sum in the formula.

Each reference scores one row (idx and val as lists; `slots` gives the field of each column)
from the model's own weights, so a test holds the model's vectorised forward to the formula
its docstring and its paper state. Nothing here is fast; use small sizes. The deep baselines
run on plain Python floats, so their loops stay quick even at the registry's default widths.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from training.models.afm import AFM
from training.models.base import FeatureModel
from training.models.deepfm import DeepFM
from training.models.fm import FM
from training.models.gmlfm import GMLFM
from training.models.nfm import NFM
from training.models.transfm import TransFM
from training.models.xdeepfm import CIN, XDeepFM

Vector = list[float]
Reference = Callable[[nn.Module, list[int], list[float], Sequence[int]], torch.Tensor | float]


def linear_part(model: FeatureModel, idx: list[int], val: list[float]) -> torch.Tensor:
    """w0 + Σ_i w_i x_i."""
    return model.w0 + sum(model.bias.weight[i, 0] * x for i, x in zip(idx, val))


def dot(a: Vector, b: Vector) -> float:
    return sum(u * w for u, w in zip(a, b))


def dense(layers: list[nn.Linear], x: Vector) -> Vector:
    """A stack of linear layers with ReLU between them (none after the last), unit by unit:
    out_o = Σ_n W_on x_n + b_o."""
    for depth, layer in enumerate(layers):
        weight = layer.weight.tolist()
        bias = layer.bias.tolist() if layer.bias is not None else [0.0] * len(weight)
        x = [dot(row, x) + b for row, b in zip(weight, bias)]
        if depth < len(layers) - 1:
            x = [max(0.0, u) for u in x]
    return x


def linears(stack: nn.Sequential) -> list[nn.Linear]:
    return [layer for layer in stack if isinstance(layer, nn.Linear)]


def field_vectors(model: FeatureModel, idx: list[int], val: list[float],
                  slots: Sequence[int]) -> list[Vector]:
    """e_f = Σ_{columns j of field f} x_j v_j, fields in ascending order of their slot ids."""
    v = model.embedding.weight.tolist()
    return [[sum(x * v[i][d] for i, x, s in zip(idx, val, slots) if s == field)
             for d in range(len(v[0]))]
            for field in sorted(set(slots))]


# ---- column models: pairs of columns, the field layout does not enter ---------------------
def naive_fm(model: FM, idx: list[int], val: list[float]) -> float:
    """ŷ = w0 + Σ w_i x_i + Σ_{i<j} <v_i, v_j> x_i x_j, literally."""
    w = model.bias.weight.detach().double().squeeze(-1)
    v = model.embedding.weight.detach().double()
    total = float(model.w0.detach()) + sum(float(w[i]) * x for i, x in zip(idx, val))
    for a in range(len(idx)):
        for b in range(a + 1, len(idx)):
            total += float(v[idx[a]] @ v[idx[b]]) * val[a] * val[b]
    return total


def naive_gmlfm(model: GMLFM, idx: list[int], val: list[float]) -> torch.Tensor:
    """w0 + Σ w_i x_i + Σ_{i<j} w_ij D(T v_i, T v_j) x_i x_j, pair by pair (autograd-ready)."""
    v = model.embedding.weight
    t = model.transform(v)
    total = linear_part(model, idx, val)
    for a, b in itertools.combinations(range(len(idx)), 2):
        i, j = idx[a], idx[b]
        w_ij = (model.h * v[i] * v[j]).sum() if model.h is not None else 1.0
        total = total + w_ij * distance(model.distance, t[i], t[j]) * val[a] * val[b]
    return total


def distance(name: str, ti: torch.Tensor, tj: torch.Tensor) -> torch.Tensor:
    if name == "manhattan":
        return (ti - tj).abs().sum()
    if name == "chebyshev":
        return (ti - tj).abs().max()
    if name == "cosine":
        return (ti @ tj) / (ti.norm() * tj.norm())
    return (ti - tj).square().sum()


def naive_nfm(model: NFM, idx: list[int], val: list[float]) -> torch.Tensor:
    """w0 + Σ w x + pᵀ MLP(Σ_{a<b} x_a x_b v_a ⊙ v_b), the bi-interaction pair by pair."""
    v = model.embedding.weight.tolist()
    bi = [0.0] * len(v[0])
    for a, b in itertools.combinations(range(len(idx)), 2):
        bi = [s + val[a] * val[b] * u * w for s, u, w in zip(bi, v[idx[a]], v[idx[b]])]
    return linear_part(model, idx, val) + dense(linears(model.mlp), bi)[0]


def naive_transfm(model: TransFM, idx: list[int], val: list[float]) -> torch.Tensor:
    """w0 + Σ w x + Σ_{a<b} x_a x_b |v_a + v'_a − v_b|², in column order."""
    v, shift = model.embedding.weight, model.translation.weight
    total = linear_part(model, idx, val)
    for a, b in itertools.combinations(range(len(idx)), 2):
        i, j = idx[a], idx[b]
        total = total + val[a] * val[b] * (v[i] + shift[i] - v[j]).square().sum()
    return total


# ---- field models: one vector per field ----------------------------------------------------
def naive_deepfm(model: DeepFM, idx: list[int], val: list[float],
                 slots: Sequence[int]) -> torch.Tensor:
    """w0 + Σ w x + Σ_{a<b} <v_a, v_b> x_a x_b over columns + DNN([e_1, …, e_F])."""
    v = model.embedding.weight.tolist()
    pairs = sum(val[a] * val[b] * dot(v[idx[a]], v[idx[b]])
                for a, b in itertools.combinations(range(len(idx)), 2))
    flat = [u for e in field_vectors(model, idx, val, slots) for u in e]
    return linear_part(model, idx, val) + pairs + dense(linears(model.dnn), flat)[0]


def naive_cin(cin: CIN, e: list[Vector]) -> float:
    """Lian et al.'s CIN: X^0 = e (F rows of k), then for each layer l and feature map o

        X^l_{o,d} = Σ_h Σ_m W^l_{o,hm} X^{l−1}_{h,d} X^0_{m,d}

    (the model stores W^l_{o,hm} at [o, h·F + m]); each map is sum-pooled over d and one
    linear unit without bias reads every layer's pooled maps."""
    n_fields, k = len(e), len(e[0])
    previous, pooled = e, []
    for weight in cin.weights:
        w = weight.tolist()
        layer = []
        for o in range(len(w)):
            row = [0.0] * k
            for h in range(len(previous)):
                for m in range(n_fields):
                    for d in range(k):
                        row[d] += w[o][h * n_fields + m] * previous[h][d] * e[m][d]
            layer.append(row)
        pooled += [sum(row) for row in layer]
        previous = layer
    return dot(cin.out.weight[0].tolist(), pooled)


def naive_xdeepfm(model: XDeepFM, idx: list[int], val: list[float],
                  slots: Sequence[int]) -> torch.Tensor:
    """w0 + Σ w x + CIN(e) + DNN([e_1, …, e_F])."""
    e = field_vectors(model, idx, val, slots)
    deep = dense(linears(model.dnn), [u for e_f in e for u in e_f])[0]
    return linear_part(model, idx, val) + naive_cin(model.cin, e) + deep


def attention_pool(model: AFM, products: list[Vector]) -> float:
    """pᵀ Σ_pairs a_pair product, a = softmax over the pairs of hᵀ ReLU(W product + b)."""
    weight, bias = model.attention.weight.tolist(), model.attention.bias.tolist()
    h, p = model.h.tolist(), model.p.tolist()
    logits = [sum(h_a * max(0.0, dot(w_a, product) + b_a) for w_a, b_a, h_a in zip(weight, bias, h))
              for product in products]
    scores = [math.exp(logit) for logit in logits]
    attention = [s / sum(scores) for s in scores]
    pooled = [sum(a * product[d] for a, product in zip(attention, products))
              for d in range(len(p))]
    return dot(p, pooled)


def naive_afm(model: AFM, idx: list[int], val: list[float], slots: Sequence[int]) -> torch.Tensor:
    """AFM as the model documents it: pairs of fields f < g, product e_f ⊙ e_g, every pair in
    the softmax (a field that is all padding has e_f = 0 and still takes its share)."""
    e = field_vectors(model, idx, val, slots)
    products = [[u * w for u, w in zip(e[f], e[g])]
                for f, g in itertools.combinations(range(len(e)), 2)]
    return linear_part(model, idx, val) + attention_pool(model, products)


def paper_afm(model: AFM, idx: list[int], val: list[float]) -> torch.Tensor:
    """Xiao et al.'s AFM: pairs of columns i < j in R_x (both x non-zero), product
    (v_i ⊙ v_j) x_i x_j, softmax over R_x only."""
    v = model.embedding.weight.tolist()
    products = [[u * w * val[a] * val[b] for u, w in zip(v[idx[a]], v[idx[b]])]
                for a, b in itertools.combinations(range(len(idx)), 2)
                if val[a] != 0 and val[b] != 0]
    return linear_part(model, idx, val) + attention_pool(model, products)


def _columns_only(reference: Callable) -> Reference:
    return lambda model, idx, val, slots: reference(model, idx, val)


REFERENCES: dict[str, Reference] = {
    "fm": _columns_only(naive_fm),
    "gmlfm": _columns_only(naive_gmlfm),
    "nfm": _columns_only(naive_nfm),
    "transfm": _columns_only(naive_transfm),
    "deepfm": naive_deepfm,
    "xdeepfm": naive_xdeepfm,
    "afm": naive_afm,
}
