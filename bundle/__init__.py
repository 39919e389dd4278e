"""Read and score exported model bundles with numpy and onnxruntime only (no torch).

    bundle = load_bundle(find_bundle(models_dir, name))   # BundleError names a bad file
    scorer = OnnxScorer(bundle, threads=2)                # or reference_scorer(bundle)
    row = bundle.encoder.encode({"gender": "F", "age": "25"})  # a request's raw values
    position = bundle.users.position("42")  # or a known user's: bundle.users.row(position)
    state = scorer.user_state(row.idx[None], row.val[None])  # (1, D): cache it
    items, scores = scorer.top_n(state, 10, [bundle.users.seen_items(position)])
    ids = bundle.catalog.ids[items[0]]                    # bundle.catalog.details(p), ...
    scores = scorer.score(state, candidates)               # (1, C) for catalog positions
    added = AddedItems(bundle, scorer.reference)          # items the catalog lacks
    parts = added.parts([added.encode({"genre": ["Drama"]}, item_id="9001")])
    scores = added.score(state, parts)                    # (1, A), exact (added_items.py)

A one-user top n over a large catalog goes through two_phase.onnx where the bundle has it:
int8 codes with a proved bound, then float32 on a shortlist, the same answer to the bit
(two_phase.py, quantise.py).

A package of its own, beside `training` and `service`, because both sides use it: training's
export writes bundles with `bundle.format`'s names and reads them back to check them, the
service serves them. Neither side then carries the other (the training image has no API code,
the API image no torch), and each imports only this. It imports neither of them.

Importing it, or `bundle.format`, loads nothing: the names below are resolved on first use, so
the exporter's constants do not pull in onnxruntime or the scorers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bundle.added_items import AddedItems
    from bundle.encoding import EncodedItem, EncodedUser
    from bundle.errors import BundleError, BundleInputError
    from bundle.item_parts import ItemParts
    from bundle.loaded import Bundle
    from bundle.onnx_scorer import OnnxScorer
    from bundle.ranking import top_n_of
    from bundle.reader import load_bundle
    from bundle.reference import ReferenceScorer, reference_scorer
    from bundle.versions import find_bundle

# public name -> the module that defines it
_HOMES = {"AddedItems": "added_items", "BundleError": "errors", "BundleInputError": "errors",
          "OnnxScorer": "onnx_scorer", "Bundle": "loaded", "EncodedItem": "encoding",
          "EncodedUser": "encoding", "ItemParts": "item_parts", "find_bundle": "versions",
          "load_bundle": "reader", "ReferenceScorer": "reference",
          "reference_scorer": "reference", "top_n_of": "ranking"}

__all__ = ["AddedItems", "Bundle", "BundleError", "BundleInputError", "EncodedItem",
           "EncodedUser", "ItemParts", "OnnxScorer", "ReferenceScorer", "find_bundle",
           "load_bundle", "reference_scorer", "top_n_of"]


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (PEP 562)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'bundle' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bundle.{_HOMES[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
