"""The check a bundle version passes before it serves: onnxruntime against the numpy reference.

reload.py refuses a version that fails it, and the old one serves on.
"""

from __future__ import annotations

import numpy as np

from bundle import BundleError, EncodedUser
from service.served_model import ServedModel

CHECK_USERS, CHECK_ITEMS = 4, 16  # rows of the self-check run on every bundle before serving
CHECK_TOLERANCE = 1e-3  # onnxruntime against the numpy reference, relative to the score scale


def self_check(model: ServedModel) -> None:
    """Score a few users through onnxruntime and the numpy reference: the two must agree
    and be finite, and the top n must be real catalog positions. Raises BundleError."""
    bundle, scorer = model.bundle, model.scorer
    users = range(min(CHECK_USERS, model.training.size))
    rows = [EncodedUser(*bundle.users.row(u), {}) for u in users] or \
        [model.profiles.encode(None, {})]
    states = model.states(rows)
    candidates = np.arange(min(CHECK_ITEMS, model.catalog.size))[None]
    # one user a call, as requests make them: onnxruntime keeps its largest call's
    # buffers, and at a million items each user of a call holds about 30 MB
    for state in states:
        served = scorer.score(state[None], candidates)
        reference = scorer.reference.score(state[None], candidates)
        scale = max(1.0, float(np.abs(reference).max()))
        if not np.isfinite(served).all() or \
                np.abs(served - reference).max() > CHECK_TOLERANCE * scale:
            raise BundleError(bundle.onnx_path, "model.onnx disagrees with the bundle's "
                                                "tables on the self-check")
        items, _ = scorer.top_n(state[None], 1, None)
        if not ((items >= 0) & (items < model.catalog.size)).all():
            raise BundleError(bundle.onnx_path, "top-n returned a position outside the "
                                                "catalog on the self-check")
