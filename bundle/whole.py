"""DeepFM, xDeepFM and AFM in numpy, over (user row, candidate item row) pairs.

Their deep parts are not additive over features, so every candidate is scored through the
whole model. A row is the user's columns followed by the item's: the models pool columns by
field (e_f = Σ_{columns j of f} x_j v_j) and sum over pairs, so the order of columns within
the row does not change a score, only the field each column belongs to.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bundle.loaded import Bundle
from bundle.mlp import Layers, dense_layers, mlp
from bundle.pairs import SideTables


def field_onehot(scoring: Mapping[str, Any]) -> np.ndarray:
    """(W_u + W_i, F): column j of a joined row belongs to field position f (FieldPool's
    sorted order), as the manifest's user_fields and item_fields say."""
    columns = list(scoring["user_fields"]) + list(scoring["item_fields"])
    onehot = np.zeros((len(columns), scoring["n_fields"]), np.float32)
    onehot[np.arange(len(columns)), columns] = 1.0
    return onehot


@dataclass(frozen=True)
class WholeModel:
    kind: str
    w0: float
    user: SideTables  # bias (n_u,), v (n_u, k)
    item: SideTables  # bias (n_i,), v (n_i, k)
    onehot: np.ndarray  # (W_u + W_i, F): the field of each column of a joined row
    dense: Layers  # DeepFM / xDeepFM tower
    weights: dict[str, np.ndarray]  # the head's own tables: cin*, att_*, afm_p

    @staticmethod
    def from_bundle(bundle: Bundle) -> WholeModel:
        scoring = bundle.scoring
        return WholeModel(
            scoring["kind"], float(bundle.table("w0")[0]),
            SideTables.load(bundle.table, "user_", ("bias", "v")),
            SideTables.load(bundle.item_table, "feature_", ("bias", "v")),
            field_onehot(scoring), dense_layers(bundle),
            {n: bundle.table(n) for n in scoring["head_tables"]})

    def __call__(self, idx: np.ndarray, val: np.ndarray, item_idx: np.ndarray,
                 item_val: np.ndarray) -> np.ndarray:
        """User rows idx, val (B, W_u) and candidate item rows item_idx, item_val
        (B, C, W_i) -> scores (B, C)."""
        shape = (*item_idx.shape[:2], idx.shape[1])
        user_x = np.broadcast_to(val[:, None], shape)
        x = np.concatenate([user_x, item_val], -1)  # (B, C, W)
        user_v = self.user.v[idx][:, None]  # (B, 1, W_u, k)
        v = np.concatenate([np.broadcast_to(user_v, (*shape, user_v.shape[-1])),
                            self.item.v[item_idx]], 2)  # (B, C, W, k)
        bias = np.concatenate([np.broadcast_to(self.user.bias[idx][:, None], shape),
                               self.item.bias[item_idx]], -1)
        xv = v * x[..., None]
        e = np.einsum("bcwk,wf->bcfk", xv, self.onehot)  # (B, C, F, k)
        return self.w0 + (bias * x).sum(-1) + getattr(self, f"_{self.kind}")(xv, e)

    def _deep(self, e: np.ndarray) -> np.ndarray:
        return mlp(e.reshape(*e.shape[:2], -1), self.dense)[..., 0]

    def _deepfm(self, xv: np.ndarray, e: np.ndarray) -> np.ndarray:
        pair = 0.5 * (np.square(xv.sum(2)) - np.square(xv).sum(2)).sum(-1)
        return pair + self._deep(e)

    def _xdeepfm(self, xv: np.ndarray, e: np.ndarray) -> np.ndarray:
        hidden, pooled, layer = e, [], 0
        while f"cin{layer}" in self.weights:
            products = hidden[:, :, :, None] * e[:, :, None]  # (B, C, H, F, k)
            products = products.reshape(*e.shape[:2], -1, e.shape[-1])  # (B, C, H·F, k)
            hidden = np.einsum("on,bcnk->bcok", self.weights[f"cin{layer}"], products)
            pooled.append(hidden.sum(-1))
            layer += 1
        return np.concatenate(pooled, -1) @ self.weights["cin_out"] + self._deep(e)

    def _afm(self, xv: np.ndarray, e: np.ndarray) -> np.ndarray:
        rows, cols = np.triu_indices(e.shape[2], 1)
        products = e[:, :, rows] * e[:, :, cols]  # (B, C, P, k)
        hidden = np.maximum(products @ self.weights["att_w"] + self.weights["att_b"], 0.0)
        logits = hidden @ self.weights["att_h"]  # (B, C, P)
        weights = np.exp(logits - logits.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        return (weights[..., None] * products).sum(2) @ self.weights["afm_p"]
