"""Read and score exported model bundles with numpy and onnxruntime only (no torch).

    bundle = load_bundle(find_bundle(models_dir, name))   # BundleError names a bad file
    scorer = OnnxScorer(bundle, threads=2)                # or reference_scorer(bundle)
    row = bundle.encode_user({"gender": "F", "age": "25"})  # or bundle.user_row(position)
    state = scorer.user_state(row.idx[None], row.val[None])  # (1, D): cache it
    items, scores = scorer.top_n(state, 10, [bundle.seen_items(position)])
    scores = scorer.score(state, candidates)               # (1, C) for catalog positions
"""

from service.bundle.errors import BundleError, BundleInputError
from service.bundle.onnx_scorer import OnnxScorer
from service.bundle.reader import Bundle, EncodedUser, find_bundle, load_bundle
from service.bundle.reference import ReferenceScorer, reference_scorer, top_n_of

__all__ = ["Bundle", "BundleError", "BundleInputError", "EncodedUser", "OnnxScorer",
           "ReferenceScorer", "find_bundle", "load_bundle", "reference_scorer", "top_n_of"]
