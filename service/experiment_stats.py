"""The two statistics an online experiment reports: a hit rate's interval and a test of two.

Each arm of an experiment counts users (or impressions) n and hits h, so each arm is a
binomial proportion. Two questions follow, and one function answers each:

- how sure are we of one arm's rate? `wilson_interval`, the score interval. The textbook
  Wald interval p ± z·sqrt(p(1-p)/n) collapses to a point at p = 0 or 1 and covers far less
  than it promises at small n or rates near 0 — exactly where a young experiment's click
  rates sit. Wilson's interval inverts the score test instead, stays inside [0, 1], and its
  coverage stays close to nominal down to a handful of trials.
- is B's rate different from A's? `two_proportion_test`, the pooled two-proportion z-test.
  Under the null hypothesis both arms share one rate, so that rate is estimated from both
  arms together (pooled), which is what makes the statistic's variance the null's.

Assumptions, which the callers must keep: trials are independent (one trial per user, or
clustering ignored knowingly — several impressions of one user are correlated), the rate
is the same for every trial of an arm, and n is large enough for the normal approximation
(roughly n·p and n·(1-p) at least 5 in each arm). The test is two-sided and fixed-horizon:
peeking at it after every user and stopping at the first small p inflates the false
positive rate, so a sequential caller must say so or use a stricter threshold.

Pure Python (math.erfc for the normal tail), so the service can report these without scipy.
"""

from __future__ import annotations

import math

Z_95 = 1.959964  # the standard normal's 97.5% quantile: a two-sided 95% interval


def _check_counts(hits: int, n: int) -> None:
    """Counts from outside the definition are a caller's bug: say so rather than return nonsense."""
    if n < 0 or hits < 0 or hits > n:
        raise ValueError(f"need 0 <= hits <= n, got hits={hits}, n={n}")


def wilson_interval(hits: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of the proportion hits/n at the normal quantile z.

    n = 0 says nothing about the rate, so the interval is all of [0, 1].
    """
    _check_counts(hits, n)
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    # at 0 or n hits the bound is exactly 0 or 1; rounding would leave it a hair inside
    low = 0.0 if hits == 0 else max(0.0, centre - half)
    high = 1.0 if hits == n else min(1.0, centre + half)
    return low, high


def normal_two_sided_p(z: float) -> float:
    """P(|Z| >= |z|) for a standard normal Z: erfc(|z|/sqrt(2)), exact in the tails too."""
    return math.erfc(abs(z) / math.sqrt(2.0))


def two_proportion_test(hits_a: int, n_a: int, hits_b: int, n_b: int) -> tuple[float, float]:
    """(z, two-sided p) of the pooled z-test of rate(B) = rate(A); z > 0 when B's is higher.

    Degenerate cases carry no evidence against the null, so they answer z = 0.0, p = 1.0:
    an empty arm, or a pooled rate of exactly 0 or 1 (no variance: both arms all misses or
    all hits, hence equal).
    """
    _check_counts(hits_a, n_a)
    _check_counts(hits_b, n_b)
    if n_a == 0 or n_b == 0:
        return 0.0, 1.0
    pooled = (hits_a + hits_b) / (n_a + n_b)
    variance = pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)
    if variance <= 0.0:
        return 0.0, 1.0
    z = (hits_b / n_b - hits_a / n_a) / math.sqrt(variance)
    return z, normal_two_sided_p(z)
