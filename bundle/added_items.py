"""Items the catalog lacks, scored exactly from their features: encode, compute parts, score.

An FM scores an item as the sum of its features, so an item added after the fit (a product
with a category and brand, a film with its genres) is scored by the model's own formula from
the per-feature tables the bundle holds, with no fit (docs/math.md, Added items):

    added = AddedItems(bundle, scorer.reference)        # BundleError: exported before them
    item = added.encode({"genre": ["Drama", "War"]}, item_id="9001")  # .ignored, .id_known
    parts = added.parts([item, ...])                    # ItemParts of A items: keep them
    scores = added.score(state, parts)                  # (B, A) float32, for user states

An added item's parts are what export computed for each catalog item (its constant part and
its family's item-side tables), so its scores are those a catalog item with the same row gets,
to float32 rounding, and both go through one scoring code (bundle/reference.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bundle import format as fmt
from bundle.encoding import EncodedItem, ItemEncoder
from bundle.item_parts import ItemParts
from bundle.loaded import Bundle
from bundle.reference import ReferenceScorer, reference_scorer


class AddedItems:
    """Encode, compute and score items a bundle's catalog does not hold."""

    def __init__(self, bundle: Bundle, scorer: ReferenceScorer | None = None):
        """`scorer`: the bundle's numpy reference (an OnnxScorer's `.reference`), or a new
        one. Raises BundleError for a bundle exported before added items (re-export it)."""
        bundle.require_item_features()
        self.bundle = bundle
        self.scorer = reference_scorer(bundle) if scorer is None else scorer
        self.encoder = ItemEncoder(bundle.fields, bundle.item_columns,
                                   bundle.manifest[fmt.ITEM_ID_FIELD])

    @property
    def id_field(self) -> str | None:
        """The item field an item's own id goes into; None where no field holds the ids."""
        return self.encoder.id_field

    @property
    def width(self) -> int:
        """W_i, the columns of an item row."""
        return len(self.bundle.item_columns)

    def encode(self, features: Mapping[str, Any], item_id: str | None = None) -> EncodedItem:
        """An item's row from its raw item-side values and its id: ItemEncoder.encode
        (BundleInputError naming the field for one it cannot take)."""
        return self.encoder.encode(features, item_id)

    def parts(self, items: Sequence[EncodedItem]) -> ItemParts:
        """The parts of these items (A may be 0), in order: O(A · W_i² · k)."""
        idx = np.stack([i.idx for i in items]) if items else np.zeros((0, self.width), np.int32)
        val = np.stack([i.val for i in items]) if items else np.zeros((0, self.width))
        return self.scorer.item_parts(idx, val)

    def score(self, state: np.ndarray, parts: ItemParts) -> np.ndarray:
        """User states (B, D) -> the score of every item of `parts` (B, A) float32."""
        return self.scorer.score_items(state, parts).astype(np.float32, copy=False)
