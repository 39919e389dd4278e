"""Whole-catalog top n for one user at a time (see bench/serve.py for batching)."""

from __future__ import annotations

import numpy as np

from service.model_host import ServedModel


class Ranker:
    async def top(self, model: ServedModel, state: np.ndarray, n: int, exclude: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """The n best catalog positions for one state (D,), best first, leaving out
        `exclude`; fewer where fewer remain."""
        return model.top_n(state[None], n, [exclude])[0]
