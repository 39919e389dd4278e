"""explain=true: the explanation of each answered item, from the user's row and the item's.

The maths and the words live in bundle/explain.py and bundle/reasons.py; this finds the rows
a request scored (a bundle item's from the catalog, an added item's from the request's union
view) and shapes the answer. It runs only where asked: an answer without explain=true is
computed exactly as before, and costs nothing here.
"""

from __future__ import annotations

import numpy as np

from bundle import Bundle, EncodedUser
from bundle import format as fmt
from bundle.explain import Explainer
from bundle.reasons import Describer
from service.explanation_schema import Explanation
from service.union_catalog import UnionCatalog


class Explanations:
    """One bundle version's explanations (see the module doc)."""

    def __init__(self, bundle: Bundle, user_id_field: str | None):
        self.explainer = Explainer(bundle)
        self.describer = Describer(bundle, user_id_field) if self.explainer.available else None
        self._idx, self._val = bundle.array(fmt.ITEM_IDX), bundle.array(fmt.ITEM_VAL)
        self._unavailable = Explanation(available=False, why=self.explainer.why_not)

    def of(self, catalog: UnionCatalog, user: EncodedUser, positions: np.ndarray
           ) -> list[Explanation]:
        """The explanation of each item (union positions of `catalog`) for the user row."""
        if self.describer is None:
            return [self._unavailable] * len(positions)
        if len(positions) == 0:
            return []
        idx, val = self._rows(catalog, positions)
        terms = self.explainer.terms(user.idx, user.val, idx, val)
        return [Explanation.model_validate(e)
                for e in self.describer.describe(terms, user.idx, user.val, idx, val)]

    def _rows(self, catalog: UnionCatalog, positions: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
        """Item rows (C, W_i) of union positions: the bundle's, or an added item's."""
        size = catalog.bundle_size
        bundle_rows = np.minimum(positions, size - 1) if size else np.zeros_like(positions)
        idx = np.array(self._idx[bundle_rows])
        val = np.array(self._val[bundle_rows])
        added = positions >= size
        if added.any():
            idx[added] = catalog.idx[positions[added] - size]
            val[added] = catalog.val[positions[added] - size]
        return idx, val
