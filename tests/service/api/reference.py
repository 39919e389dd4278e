"""What the service must answer, computed from the trained torch model itself."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bundle import load_bundle
from tests.service.api.conftest import Trained
from training.export.rebuild import rebuild_model
from training.pipeline import prepare


class TorchModel:
    """The run's model on the run's data: scores of (user, item) by their raw ids."""

    def __init__(self, trained: Trained):
        rebuilt = rebuild_model(trained.run)
        self.net = rebuilt.model
        self.data, self.split = prepare(rebuilt.config)
        self.user_row = {u: i for i, u in enumerate(self.data.user_ids)}
        self.item_ids = [str(i) for i in load_bundle(trained.bundle).array(
            "items/ids.npy").tolist()]  # the catalog in the bundle's order
        item = {i: p for p, i in enumerate(self.data.item_ids)}
        rows = [item[i] for i in self.item_ids]
        self.item_idx = self.data.item_table.idx[rows]
        self.item_val = self.data.item_table.val[rows]

    @torch.no_grad()
    def scores(self, user_id: str) -> np.ndarray:
        """(N,) float64: the plain forward on every catalog item for one training user."""
        u = self.user_row[user_id]
        n = len(self.item_idx)
        idx = np.concatenate([np.repeat(self.data.user_table.idx[u][None], n, 0),
                              self.item_idx], 1)
        val = np.concatenate([np.repeat(self.data.user_table.val[u][None], n, 0),
                              self.item_val], 1)
        return self.net(torch.from_numpy(idx), torch.from_numpy(val)).double().numpy()

    def seen(self, user_id: str) -> set[str]:
        """Items the user interacted with in training (the service's exclusions)."""
        train = self.split.train
        u = self.user_row[user_id]
        mask = (train.rows[0] == u) & (train.labels > 0)
        return {self.data.item_ids[i] for i in train.rows[1][mask]}


def brute_force_top(scores: np.ndarray, item_ids: Sequence[str], exclude: set[str], n: int
                    ) -> list[tuple[str, float]]:
    """Every item not excluded, sorted by score (ties by catalog order), the first n."""
    ranked = sorted((i for i in range(len(item_ids)) if item_ids[i] not in exclude),
                    key=lambda i: (-scores[i], i))
    return [(item_ids[i], float(scores[i])) for i in ranked[:n]]


def assert_same_ranking(got: list[tuple[str, float]], want: list[tuple[str, float]],
                        relative: float = 1e-4) -> None:
    """The same scores in the same order (float32 against float64: `relative` of the
    scale); ids equal wherever the scores are not within that tolerance of a tie."""
    assert len(got) == len(want), f"{len(got)} items, want {len(want)}"
    got_scores, want_scores = np.array([s for _, s in got]), np.array([s for _, s in want])
    scale = max(np.abs(want_scores).max(initial=0.0), 1e-6)
    np.testing.assert_allclose(got_scores, want_scores, rtol=relative, atol=relative * scale)
    gaps = np.diff(want_scores)
    for k, ((g, _), (w, _)) in enumerate(zip(got, want)):
        near_tie = (k > 0 and -gaps[k - 1] < relative * scale) or \
            (k < len(gaps) and -gaps[k] < relative * scale)
        assert g == w or near_tie, f"rank {k}: {g} != {w}"
