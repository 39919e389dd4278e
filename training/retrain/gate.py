"""The gate: a candidate is published only when it is not worse than the served model beyond
the noise of the cases both were judged on.

Per metric (HR@10, NDCG@10 among the sampled negatives) the per-user differences
d = candidate − served are paired (the same users, the same negatives), so their noise is
that of d alone: its mean's standard error se = sd(d)/√G. The candidate is refused when, for
either metric, mean(d) + z·se < 0 (z = 1.96 by default: worse at about 97.5% one-sided
confidence, were d's mean normal), or when there are fewer than `min_cases` cases, too few to
judge. Full-catalog recall@10 is reported beside them, not gated: it is far noisier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.retrain.judge import Judged, K

GATED = (f"hr@{K}", f"ndcg@{K}")


@dataclass(frozen=True)
class Verdict:
    publish: bool
    reason: str
    differences: dict[str, dict[str, float]]  # metric -> mean, se, lower bound

    def to_dict(self) -> dict[str, Any]:
        return {"publish": self.publish, "reason": self.reason, "differences": self.differences}


def paired(candidate: np.ndarray, served: np.ndarray, z: float) -> dict[str, float]:
    """Mean of the per-case differences, its standard error and mean + z·se."""
    d = np.asarray(candidate, np.float64) - np.asarray(served, np.float64)
    mean = float(d.mean()) if len(d) else 0.0
    se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else math.inf
    return {"mean": round(mean, 6), "se": round(se, 6), "upper": round(mean + z * se, 6)}


def decide(candidate: Judged, served: Judged, z: float, min_cases: int) -> Verdict:
    """Publish unless too few cases or the candidate is worse beyond z standard errors."""
    differences = {
        f"hr@{K}": paired(candidate.hit, served.hit, z),
        f"ndcg@{K}": paired(candidate.ndcg, served.ndcg, z),
        f"recall@{K}": paired(candidate.recall, served.recall, z)}
    cases = len(candidate.hit)
    if cases < min_cases:
        return Verdict(False, f"refused: {cases} cases, fewer than --min-cases {min_cases}",
                       differences)
    worse = [m for m in GATED if differences[m]["upper"] < 0]
    if worse:
        said = "; ".join(f"{m} {differences[m]['mean']:+.4f} ± {differences[m]['se']:.4f}"
                         for m in worse)
        return Verdict(False, f"refused: worse beyond {z:g} standard errors ({said})",
                       differences)
    said = "; ".join(f"{m} {differences[m]['mean']:+.4f} ± {differences[m]['se']:.4f}"
                     for m in GATED)
    return Verdict(True, f"published: not worse beyond {z:g} standard errors ({said})",
                   differences)
