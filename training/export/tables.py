"""From a trained torch model to the numpy tables of its bundle: the one decomposition contract.

Every split model exports the same shape of thing — user-side per-feature tables (what a
user state is built from), item-side tables (per item, or per item feature), each item's
constant part, and a `scoring` record naming its family — for the one numpy scorer of
the `bundle` package. Item-side parts come from the model's own forward and `state` methods on the
catalog's rows, so export reuses the math the model tests check; transforms (DNN,
Mahalanobis) run here once per feature and never at request time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import nn

from bundle import format as fmt
from bundle.layout import PAIRWISE_ONLY, StateLayout
from training.errors import ConfigError
from training.export.catalog import ServingData, SideIndex
from training.models.afm import AFM
from training.models.base import FeatureModel
from training.models.deepfm import DeepFM
from training.models.fm import FM
from training.models.gmlfm import GMLFM
from training.models.nfm import NFM
from training.models.transfm import TransFM
from training.models.xdeepfm import XDeepFM

ITEM_CHUNK = 8192  # catalog rows per forward / state call


@dataclass
class Extracted:
    scoring: dict[str, Any]
    tables: dict[str, np.ndarray] = field(default_factory=dict)  # -> tables/<name>.npy
    item_tables: dict[str, np.ndarray] = field(default_factory=dict)  # -> items/<name>.npy


@dataclass(frozen=True)
class Context:
    """What every extractor reads: the model, its feature sides and the catalog rows."""

    model: FeatureModel
    sides: SideIndex
    serving: ServingData
    slot_field: np.ndarray

    @staticmethod
    def numpy(tensor: torch.Tensor) -> np.ndarray:
        return tensor.detach().cpu().numpy().astype(np.float32)

    @cached_property
    def v(self) -> np.ndarray:
        return self.numpy(self.model.embedding.weight)

    @cached_property
    def bias(self) -> np.ndarray:
        return self.numpy(self.model.bias.weight[:, 0])

    def user_rows(self, table: np.ndarray) -> np.ndarray:
        return table[self.sides.user_features]

    def item_feature_rows(self, table: np.ndarray) -> np.ndarray:
        return table[self.sides.item_features]

    @torch.no_grad()
    def over_items(self, fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> list[Any]:
        """fn(idx, val) on the catalog's rows (global indices), chunk by chunk."""
        s = self.serving
        return [fn(torch.from_numpy(s.item_idx[i:i + ITEM_CHUNK]),
                   torch.from_numpy(s.item_val[i:i + ITEM_CHUNK]))
                for i in range(0, len(s.item_ids), ITEM_CHUNK)]

    def item_forward(self) -> np.ndarray:
        """w0 + the item's own linear and pair terms: the model on the item's columns alone."""
        return np.concatenate([self.numpy(s) for s in self.over_items(self.model)])

    def item_state(self) -> dict[str, np.ndarray]:
        """The model's additive state of every item's row, field by field."""
        chunks = self.over_items(self.model.state)
        return {f.name: np.concatenate([self.numpy(getattr(c, f.name)) for c in chunks])
                for f in fields(chunks[0])}

    def base(self, family: str, **scoring: Any) -> Extracted:
        s = self.serving
        scoring = {"path": fmt.WHOLE if family == fmt.WHOLE else fmt.SPLIT, "family": family,
                   "dim": self.model.embedding.embedding_dim,
                   "user_width": s.user_idx.shape[1], "item_width": s.item_idx.shape[1],
                   "items": len(s.item_ids), "item_features": len(self.sides.item_features),
                   **scoring}
        # w0 and every item feature's bias: with the family's item-feature vectors, what an
        # item the catalog lacks is scored from (bundle/added_items.py)
        return Extracted(scoring, {"user_bias": self.user_rows(self.bias),
                                   "w0": self.numpy(self.model.w0).reshape(1)},
                         {"feature_bias": self.item_feature_rows(self.bias)})


def extract(model: FeatureModel, sides: SideIndex, serving: ServingData,
            slot_field: np.ndarray) -> Extracted:
    """The tables and scoring record of any registered model (eval mode)."""
    model.eval()
    ctx = Context(model, sides, serving, np.asarray(slot_field))
    for kind, extractor in EXTRACTORS.items():
        if isinstance(model, kind):
            out = extractor(ctx)
            out.scoring["state_size"] = StateLayout.of(out.scoring).size
            return out
    raise TypeError(f"no export for {type(model).__name__}")


def _fm(ctx: Context) -> Extracted:
    out = ctx.base(fmt.LINEAR, kind="fm", query_size=ctx.v.shape[1])
    out.tables["user_v"] = ctx.user_rows(ctx.v)
    out.item_tables |= {"const": ctx.item_forward(), "matrix": ctx.item_state()["s"],
                        "feature_v": ctx.item_feature_rows(ctx.v)}
    return out


def _transfm(ctx: Context) -> Extracted:
    model: TransFM = ctx.model  # type: ignore[assignment]
    after = ctx.serving.user_columns > ctx.serving.item_columns.max()
    before = ctx.serving.user_columns < ctx.serving.item_columns.min()
    if not (after | before).all():
        raise ConfigError("TransFM export needs the item columns in one block: a user or "
                          "context column sits between item columns")
    state = ctx.item_state()
    matrix = [state["x"][:, None], state["xvv"][:, None], state["xv"]]
    if after.any():
        matrix += [state["xaa"][:, None], state["xa"]]
    out = ctx.base(fmt.LINEAR, kind="transfm", after_items=after.tolist(),
                   query_size=sum(m.shape[1] for m in matrix))
    a = ctx.v + ctx.numpy(model.translation.weight)  # a = v + v': a feature placed first
    out.tables |= {"user_v": ctx.user_rows(ctx.v), "user_a": ctx.user_rows(a)}
    out.item_tables |= {"const": ctx.item_forward(), "matrix": np.concatenate(matrix, 1),
                        "feature_v": ctx.item_feature_rows(ctx.v),
                        "feature_a": ctx.item_feature_rows(a)}
    return out


def _gmlfm(ctx: Context) -> Extracted:
    model: GMLFM = ctx.model  # type: ignore[assignment]
    with torch.no_grad():
        t = ctx.numpy(model.transform(model.embedding.weight))
    if model.distance == "cosine":  # the bundle holds unit vectors u = t / |t|
        t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    weighted = model.h is not None
    if weighted or model.distance in PAIRWISE_ONLY:
        out = ctx.base(fmt.FEATURE_PAIRS, kind="gmlfm", distance=model.distance,
                       weighted=weighted)
        if weighted and model.distance not in PAIRWISE_ONLY:
            out.scoring["pair_form"] = cheaper_pair_form(out.scoring)
        out.tables |= {"user_v": ctx.user_rows(ctx.v), "user_t": ctx.user_rows(t)}
        out.item_tables |= {"const": ctx.item_forward(), "feature_t": ctx.item_feature_rows(t)}
        if weighted:
            out.tables["h"] = ctx.numpy(model.h)
            out.item_tables["feature_v"] = ctx.item_feature_rows(ctx.v)
        if weighted and model.distance != "cosine":
            out.item_tables["feature_s"] = np.square(ctx.item_feature_rows(t)).sum(1)
        return out
    state = ctx.item_state()  # without the weight: (Σx, Σx s, Σx t), or Σx u for cosine
    matrix = state["t"] if model.distance == "cosine" else np.concatenate(
        [state["x"][:, None], state["xs"][:, None], state["t"]], 1)
    out = ctx.base(fmt.LINEAR, kind="gmlfm", distance=model.distance,
                   query_size=matrix.shape[1])
    out.tables["user_t"] = ctx.user_rows(t)
    out.item_tables |= {"const": ctx.item_forward(), "matrix": matrix,
                        "feature_t": ctx.item_feature_rows(t)}
    return out


def pair_form_costs(scoring: dict[str, Any]) -> dict[str, int]:
    """Multiply-adds per item feature of the cross term Σ_j x_j (hv_j · v_l)(t_j · t_l)
    in each form (docs/math.md, GML-FM with its weight): the row form takes 2R dot
    products of k, the matrix form forms C t_l (k k') and its dot product with v_l (k).
    Both add the same a · v_l and b · v_l of squared distances, so those are left out."""
    k, width = scoring["dim"], scoring["user_width"]
    return {fmt.PAIR_ROWS: 2 * width * k, fmt.PAIR_MATRIX: k * k + k}


def cheaper_pair_form(scoring: dict[str, Any]) -> str:
    """The row form while the user is narrow (every bundle at k = 64 up to R = 32 user
    columns: a history window up to about 30), the matrix form beyond; ties keep rows, the
    form the two-phase graph can bound (bundle/two_phase.py)."""
    costs = pair_form_costs(scoring)
    return fmt.PAIR_MATRIX if costs[fmt.PAIR_MATRIX] < costs[fmt.PAIR_ROWS] else fmt.PAIR_ROWS


def _nfm(ctx: Context) -> Extracted:
    model: NFM = ctx.model  # type: ignore[assignment]
    state = ctx.item_state()
    layers = dense_tables(ctx, model.mlp)
    out = ctx.base(fmt.NFM, kind="nfm", dense_layers=len(layers) // 2)
    out.tables |= {"user_v": ctx.user_rows(ctx.v), **layers}
    out.item_tables |= {"const": ctx.numpy(model.w0) + state["lin"], "s": state["s"],
                        "q": state["q"], "feature_v": ctx.item_feature_rows(ctx.v)}
    return out


def _whole(ctx: Context) -> Extracted:
    """DeepFM, xDeepFM, AFM: per-feature tables of both sides, the model's dense weights, and
    the field (in FieldPool's sorted order) of every user and item column."""
    model = ctx.model
    kind = {DeepFM: "deepfm", XDeepFM: "xdeepfm", AFM: "afm"}[type(model)]
    _, position = np.unique(ctx.slot_field, return_inverse=True)
    head = head_tables(ctx)
    dense = dense_tables(ctx, model.dnn) if hasattr(model, "dnn") else {}
    out = ctx.base(fmt.WHOLE, kind=kind, n_fields=int(position.max()) + 1,
                   user_fields=position[ctx.serving.user_columns].tolist(),
                   item_fields=position[ctx.serving.item_columns].tolist(),
                   dense_layers=len(dense) // 2, head_tables=sorted(head),
                   cin_layers=len(model.cin.weights) if isinstance(model, XDeepFM) else 0)
    out.tables |= {"user_v": ctx.user_rows(ctx.v), **dense, **head}
    out.item_tables["feature_v"] = ctx.item_feature_rows(ctx.v)
    return out


def head_tables(ctx: Context) -> dict[str, np.ndarray]:
    """xDeepFM's CIN and AFM's attention weights, oriented as the numpy scorer uses them."""
    model = ctx.model
    if isinstance(model, XDeepFM):
        cin = {f"cin{i}": ctx.numpy(w) for i, w in enumerate(model.cin.weights)}
        return cin | {"cin_out": ctx.numpy(model.cin.out.weight[0])}
    if isinstance(model, AFM):
        return {"att_w": ctx.numpy(model.attention.weight.T),
                "att_b": ctx.numpy(model.attention.bias), "att_h": ctx.numpy(model.h),
                "afm_p": ctx.numpy(model.p)}
    return {}


def dense_tables(ctx: Context, tower: nn.Sequential) -> dict[str, np.ndarray]:
    """dense{i}_w (in, out) and dense{i}_b (out,) of each Linear of a ReLU tower."""
    linears = [m for m in tower if isinstance(m, nn.Linear)]
    out = {}
    for i, layer in enumerate(linears):
        out[f"dense{i}_w"] = ctx.numpy(layer.weight.T)
        out[f"dense{i}_b"] = (ctx.numpy(layer.bias) if layer.bias is not None
                              else np.zeros(layer.out_features, np.float32))
    return out


EXTRACTORS: dict[type, Callable[[Context], Extracted]] = {
    FM: _fm, TransFM: _transfm, GMLFM: _gmlfm, NFM: _nfm, DeepFM: _whole, XDeepFM: _whole,
    AFM: _whole}
