"""A cached user state as bytes: a 16-byte tag of the profile (and, for a model with a
history field, the window) it was computed from, then the state as little-endian float32,
then, for a history model, the pair sums it moves with (bundle/incremental.py) as float64.

The tag makes read-your-writes hold under races: a request that read the old profile and
writes its state after a PUT has written the new one leaves a blob whose tag no longer
matches the stored profile, so every later reader recomputes instead of trusting it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

TAG_BYTES = 16
FLOAT = np.dtype("<f4")
SUM = np.dtype("<f8")


def canonical_profile(features: Mapping[str, Any]) -> bytes:
    """The one byte string of a profile: what the store keeps and what the tag hashes."""
    return json.dumps(features, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True).encode("ascii")


def profile_tag(profile: bytes, window: Sequence[str] = ()) -> bytes:
    """What a state was computed from: the profile's bytes, and the history window's items
    (none for a model without a history field: then the tag is the profile's alone)."""
    tag = hashlib.blake2b(profile, digest_size=TAG_BYTES)
    if window:
        tag.update(b"\0" + json.dumps(list(window), ensure_ascii=True).encode("ascii"))
    return tag.digest()


def pack(tag: bytes, state: np.ndarray, sums: np.ndarray | None = None) -> bytes:
    blob = tag + np.ascontiguousarray(state, FLOAT).tobytes()
    return blob if sums is None else blob + np.ascontiguousarray(sums, SUM).tobytes()


def unpack(blob: bytes | None, tag: bytes, size: int, sums: int = 0
           ) -> tuple[np.ndarray, np.ndarray] | None:
    """The state (size,) and the `sums` float64 after it, if the blob is whole and was
    computed from the profile (and window) tagged `tag`; None (recompute) otherwise."""
    if blob is None or len(blob) != TAG_BYTES + 4 * size + 8 * sums \
            or blob[:TAG_BYTES] != tag:
        return None
    end = TAG_BYTES + 4 * size
    return np.frombuffer(blob, FLOAT, size, TAG_BYTES), np.frombuffer(blob, SUM, sums, end)


def tag_of(blob: bytes | None) -> bytes:
    """The tag a blob starts with; b"" for none (what a conditional write expects to find
    when it read no state)."""
    return blob[:TAG_BYTES] if blob else b""
