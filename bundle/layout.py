"""The user state: one float32 vector per user, the same for numpy, onnxruntime and Redis.

Its parts depend on the scoring family (manifest["scoring"]); `state_layout` is the one place
that says which parts, in which order, so the numpy packer and the ONNX graph's slices agree.

    linear         part, query (m)                 score = part + const_I + matrix_I · query
    feature_pairs  part, x (R), [a, b] (k each), [hv] (R·k), t (R·k')
    nfm            part, s (k), q (k)
    whole          idx (R), val (R): the user's feature row itself (indices as exact floats)

`part` is the user's own contribution (its linear and within-user pair terms); R is the width
of a user row, k the embedding size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bundle import format as fmt

SQUARED = ("euclidean", "mahalanobis", "dnn")  # distances with an additive state
PAIRWISE_ONLY = ("manhattan", "chebyshev")
MAX_EXACT_INDEX = 1 << 24  # float32 holds every integer below this exactly


def state_layout(scoring: Mapping[str, Any]) -> list[tuple[str, int]]:
    """(name, size) of each part of the state, in order."""
    family, k, width = scoring["family"], scoring["dim"], scoring["user_width"]
    if family == fmt.LINEAR:
        return [("part", 1), ("query", scoring["query_size"])]
    if family == fmt.NFM:
        return [("part", 1), ("s", k), ("q", k)]
    if family == fmt.WHOLE:
        return [("idx", width), ("val", width)]
    parts = [("part", 1), ("x", width)]
    if scoring["weighted"] and scoring["distance"] in SQUARED:
        parts += [("a", k), ("b", k)]
    if scoring["weighted"]:
        parts.append(("hv", width * k))
    return parts + [("t", width * k)]


@dataclass(frozen=True)
class StateLayout:
    parts: tuple[tuple[str, int], ...]

    @staticmethod
    def of(scoring: Mapping[str, Any]) -> StateLayout:
        return StateLayout(tuple(state_layout(scoring)))

    @property
    def size(self) -> int:
        return sum(size for _, size in self.parts)

    def span(self, name: str) -> tuple[int, int]:
        """[start, stop) of a part within the state vector."""
        start = 0
        for part, size in self.parts:
            if part == name:
                return start, start + size
            start += size
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(part == name for part, _ in self.parts)

    def pack(self, values: Mapping[str, np.ndarray]) -> np.ndarray:
        """(B, D) float32 from each part given as (B, ...) arrays."""
        return np.concatenate([np.asarray(values[name], np.float32).reshape(-1, size)
                               for name, size in self.parts], axis=1)

    def view(self, state: np.ndarray, name: str, *shape: int) -> np.ndarray:
        """A part of a (B, D) state as (B, *shape)."""
        start, stop = self.span(name)
        return state[:, start:stop].reshape(len(state), *shape)
