"""Timing on a shared, noisy machine: interleaved medians and the read-once floor of a
catalog (used by bench.export_serving and bench.serve)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bundle import Bundle


@dataclass(frozen=True)
class Timing:
    median: float  # ms
    best: float  # ms: what the code does when it has the cores to itself

    def __truediv__(self, n: float) -> Timing:
        return Timing(self.median / n, self.best / n)

    def __str__(self) -> str:
        return f"{self.median:.2f} ({self.best:.2f})"


def interleaved(calls: dict[str, tuple[Callable[[], object], int]],
                rounds: int) -> dict[str, Timing]:
    """Median and best time of each call; `name` runs every `every`-th round, so slow and
    fast calls share the same stretch of a noisy, shared machine."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for fn, _ in calls.values():
        fn()  # warm: first-call allocations and lazy initialisation are not the steady state
    for r in range(rounds):
        for name, (fn, every) in calls.items():
            if r % every == 0:
                start = time.perf_counter()
                fn()
                times[name].append(1e3 * (time.perf_counter() - start))
    return {name: Timing(statistics.median(t), min(t)) for name, t in times.items()}


def item_arrays(bundle: Bundle) -> list[np.ndarray]:
    """Every item-side array model.onnx reads, in RAM (not the ids and display text)."""
    return [np.array(bundle.array(name)) for name in bundle.manifest["files"]
            if name.startswith("items/") and name.endswith(".npy")
            and bundle.array(name).dtype.kind in "fi"]


def read_once(arrays: list[np.ndarray]) -> Callable[[], None]:
    """One pass over the arrays with numpy's SIMD max, the fastest single read measured here:
    the floor for any exact scorer of the whole catalog."""
    def read() -> None:
        for a in arrays:
            a.max()
    return read
