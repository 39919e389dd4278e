"""Export checks what it wrote: the staged bundle, read back by the service's torch-free reader,
must score like the torch model before it is published.

The tables and the ONNX graph are a decomposition of the model's forward (tables.py,
onnx_graphs.py); a slip in either would otherwise surface only as wrong recommendations. So
a seeded sample of known users × catalog items is scored three ways — the model's own forward,
the bundle's numpy reference and onnxruntime over model.onnx — and both bundle paths must
agree with torch within the parity tests' float32 tolerance (`tolerance`, shared with
tests/export), and so must the sampled items scored as added items, from parts computed from
their rows and the item features' tables alone. Where the bundle has two_phase.onnx, its top
10 for each sampled user must be model.onnx's to the last bit wherever it certifies one. A
sample of 8 x 32 is cheap: 5–70 ms a small export, about 0.2 s for xDeepFM's CIN, against
some 4 s for the CLI's export as a whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bundle import BundleError, OnnxScorer, load_bundle
from bundle import format as fmt
from training.errors import GmlrecError
from training.export.catalog import ServingData

SAMPLE_USERS, SAMPLE_ITEMS, SAMPLE_SEED = 8, 32, 0
TOP = 10  # the two-phase graph's top n is held to model.onnx's for each sampled user
RELATIVE = 1e-4  # float32 agreement, relative to each score or to the scale of the scores


class BundleMismatch(GmlrecError):
    """The written bundle does not score like the model it was exported from."""


def tolerance(want: np.ndarray) -> dict[str, float]:
    """rtol and atol of np.allclose / assert_allclose: 1e-4 of each score, or of the scale
    (the largest |score|) of them all."""
    scale = max(float(np.abs(want).max(initial=0.0)), 1e-6)
    return {"rtol": RELATIVE, "atol": RELATIVE * scale}


@torch.no_grad()
def torch_scores(net: torch.nn.Module, user_idx: np.ndarray, user_val: np.ndarray,
                 item_idx: np.ndarray, item_val: np.ndarray,
                 columns: np.ndarray | None = None) -> np.ndarray:
    """The model's plain forward on every (user row, item row): (B, N), global indices.

    `columns` (W_u + W_i,) is where each column of the joined user-then-item row sits in the
    model's rows (ServingData's user_columns then item_columns); the default keeps that order.
    """
    order = np.argsort(columns) if columns is not None else slice(None)
    b, n = len(user_idx), len(item_idx)

    def joined(user: np.ndarray, item: np.ndarray) -> torch.Tensor:  # (B·N, W), one call
        rows = np.concatenate([np.repeat(user, n, 0), np.tile(item, (b, 1))], 1)
        return torch.from_numpy(np.ascontiguousarray(rows[:, order]))

    return net(joined(user_idx, item_idx), joined(user_val, item_val)).reshape(b, n).numpy()


def verify_bundle(path: Path, model: torch.nn.Module, serving: ServingData) -> None:
    """Raise BundleMismatch unless the bundle at `path` scores a sample of its known users
    and items as `model` (eval mode) does, through the numpy reference and onnxruntime."""
    rng = np.random.default_rng(SAMPLE_SEED)
    n_users, n_items = len(serving.user_ids), len(serving.item_ids)
    if not n_users or not n_items:
        return
    users = np.sort(rng.choice(n_users, min(SAMPLE_USERS, n_users), replace=False))
    items = np.sort(rng.choice(n_items, min(SAMPLE_ITEMS, n_items), replace=False))
    want = torch_scores(model, serving.user_idx[users], serving.user_val[users],
                        serving.item_idx[items], serving.item_val[items],
                        np.concatenate([serving.user_columns, serving.item_columns]))
    try:
        bundle = load_bundle(path, verify=False)  # its hashes were taken from these files
        onnx = OnnxScorer(bundle, threads=1, two_phase_from=0)
        rows = [bundle.users.row(int(u)) for u in users]  # positions follow serving's order
        state = onnx.user_state(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]))
        candidates = np.broadcast_to(items, (len(users), len(items)))
        problems = [_disagreement(label, scorer.score(state, candidates), want)
                    for label, scorer in (("onnxruntime", onnx),
                                          ("numpy reference", onnx.reference))]
        # the sampled items again, as items the catalog lacks: parts from their rows alone
        added = onnx.reference.item_parts(bundle.array(fmt.ITEM_IDX)[items],
                                          bundle.array(fmt.ITEM_VAL)[items])
        problems.append(_disagreement("added items' parts",
                                      onnx.reference.score_items(state, added), want))
        problems.append(_two_phase_disagreement(onnx, state))
    except BundleError as err:
        raise BundleMismatch(f"the written bundle does not load: {err}; nothing published"
                             ) from None
    if any(problems):
        scoring = bundle.scoring
        raise BundleMismatch(
            f"the written bundle does not score like the torch model "
            f"({scoring['path']} path, {scoring['kind']}/{scoring['family']}): "
            f"{'; '.join(p for p in problems if p)} ({len(users)} users x {len(items)} items, "
            f"tolerance {RELATIVE:g} of the score scale {float(np.abs(want).max()):.3g}); "
            "nothing published")


def _disagreement(label: str, got: np.ndarray, want: np.ndarray) -> str | None:
    """None when `got` matches `want` within `tolerance`, else what is off and by how much."""
    limits = tolerance(want)
    if np.isfinite(got).all() and np.allclose(got, want, **limits):
        return None
    worst = float(np.nanmax(np.abs(got.astype(np.float64) - want), initial=0.0))
    finite = "" if np.isfinite(got).all() else ", non-finite scores"
    return f"{label} off by up to {worst:.3g}{finite}"


def _two_phase_disagreement(onnx: OnnxScorer, state: np.ndarray) -> str | None:
    """None unless two_phase.onnx certifies a top n that is not model.onnx's, to the bit."""
    if onnx.two_phase is None:
        return None
    for row in state:
        got, want = onnx.two_phase.top_n(row[None], TOP, None), onnx.float32_top_n(
            row[None], TOP, None)
        if got is not None and not all(np.array_equal(g, w) for g, w in zip(got, want)):
            return "two_phase.onnx certified a top n that model.onnx does not give"
    return None
