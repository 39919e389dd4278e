"""service.experiment_stats against hand-computed values and the naive definitions.

The Wilson interval is checked against the set it is defined as (every p0 the score test
does not reject, found by a fine grid), and its coverage against the exact binomial sum and a
seeded simulation; the z-test against a hand-worked case, Pearson's chi-square of the 2x2
table (z² equals it without continuity correction) and an A/A simulation of its size.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from service.experiment_stats import normal_two_sided_p, two_proportion_test, wilson_interval


def _phi(x: float) -> float:
    """The standard normal CDF through math.erf, independent of the module's erfc."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_wilson_matches_hand_computed_values() -> None:
    # 0/10: centre = half = (z²/20)/(1 + z²/10) = 0.138770..., so the interval is [0, 2·that]
    low, high = wilson_interval(0, 10)
    z2 = 1.959964 ** 2
    assert low == 0.0
    assert high == pytest.approx(2 * (z2 / 20) / (1 + z2 / 10), abs=1e-12)
    assert high == pytest.approx(0.27754, abs=1e-5)
    # 5/10: symmetric about 0.5, the published 0.2366 .. 0.7634
    low, high = wilson_interval(5, 10)
    assert (low, high) == (pytest.approx(0.23659, abs=1e-5), pytest.approx(0.76341, abs=1e-5))
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def _wilson_by_definition(hits: int, n: int, z: float) -> tuple[float, float]:
    """Every p0 on a fine grid that the score test |p̂ - p0| <= z·sqrt(p0(1-p0)/n) keeps."""
    grid = np.linspace(0.0, 1.0, 200_001)
    p_hat = hits / n
    kept = np.abs(p_hat - grid) <= z * np.sqrt(grid * (1 - grid) / n)
    kept[0] = hits == 0  # at p0 = 0 or 1 the test's variance vanishes: only p̂ itself is kept
    kept[-1] = hits == n
    return float(grid[kept].min()), float(grid[kept].max())


def test_wilson_is_the_set_the_score_test_keeps_on_random_counts() -> None:
    rng = np.random.default_rng(34)
    for _ in range(40):
        n = int(rng.integers(1, 400))
        hits = int(rng.integers(0, n + 1))
        z = float(rng.choice([1.0, 1.959964, 2.575829]))
        low, high = wilson_interval(hits, n, z)
        want_low, want_high = _wilson_by_definition(hits, n, z)
        assert low == pytest.approx(want_low, abs=1e-5), (hits, n, z)
        assert high == pytest.approx(want_high, abs=1e-5), (hits, n, z)


@pytest.mark.parametrize(("n", "p"), [(50, 0.1), (100, 0.3), (200, 0.05), (400, 0.5)])
def test_wilson_covers_close_to_95_percent(n: int, p: float) -> None:
    # exactly: the binomial probability of every count whose interval holds p
    ks = np.arange(n + 1)
    log_pmf = np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                        for k in ks]) + ks * math.log(p) + (n - ks) * math.log1p(-p)
    covers = np.array([lo <= p <= hi for lo, hi in (wilson_interval(int(k), n) for k in ks)])
    exact = float(np.exp(log_pmf)[covers].sum())
    assert 0.92 <= exact <= 0.98, exact
    # and by simulation, which agrees with the exact sum within its sampling error
    draws = np.random.default_rng(n).binomial(n, p, size=4000)
    simulated = float(np.mean(covers[draws]))
    assert abs(simulated - exact) < 4 * math.sqrt(exact * (1 - exact) / 4000) + 1e-9


def test_z_test_matches_a_hand_worked_case() -> None:
    # 10/100 against 20/100: pooled 0.15, se = sqrt(0.15·0.85·0.02) = 0.050498
    z, p = two_proportion_test(10, 100, 20, 100)
    assert z == pytest.approx(0.1 / math.sqrt(0.15 * 0.85 * 0.02), rel=1e-12)
    assert z == pytest.approx(1.98030, abs=1e-5)
    assert p == pytest.approx(2 * (1 - _phi(z)), rel=1e-9)
    assert p == pytest.approx(0.04767, abs=1e-5)
    z_swapped, p_swapped = two_proportion_test(20, 100, 10, 100)
    assert z_swapped == pytest.approx(-z) and p_swapped == pytest.approx(p)


def _pearson_chi_square(hits_a: int, n_a: int, hits_b: int, n_b: int) -> float:
    observed = np.array([[hits_a, n_a - hits_a], [hits_b, n_b - hits_b]], dtype=float)
    expected = observed.sum(1, keepdims=True) * observed.sum(0, keepdims=True) / observed.sum()
    return float(((observed - expected) ** 2 / expected).sum())


def test_z_squared_is_pearsons_chi_square_on_random_tables() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n_a, n_b = (int(v) for v in rng.integers(1, 5000, size=2))
        hits_a, hits_b = int(rng.integers(0, n_a + 1)), int(rng.integers(0, n_b + 1))
        if hits_a + hits_b in (0, n_a + n_b):
            continue
        z, p = two_proportion_test(hits_a, n_a, hits_b, n_b)
        assert z * z == pytest.approx(_pearson_chi_square(hits_a, n_a, hits_b, n_b), rel=1e-9)
        assert p == pytest.approx(2 * (1 - _phi(abs(z))), abs=1e-12)


def test_degenerate_tables_carry_no_evidence() -> None:
    assert two_proportion_test(0, 0, 5, 10) == (0.0, 1.0)
    assert two_proportion_test(3, 10, 0, 0) == (0.0, 1.0)
    assert two_proportion_test(0, 10, 0, 30) == (0.0, 1.0)
    assert two_proportion_test(10, 10, 30, 30) == (0.0, 1.0)
    assert normal_two_sided_p(0.0) == 1.0


def test_a_a_false_positive_rate_is_near_the_level() -> None:
    # same rate in both arms: p < 0.05 about 5% of the time (4000 runs: sd 0.34 points)
    rng = np.random.default_rng(2026)
    n = 2000
    hits = rng.binomial(n, 0.12, size=(4000, 2))
    rate = np.mean([two_proportion_test(int(a), n, int(b), n)[1] < 0.05 for a, b in hits])
    assert 0.04 <= rate <= 0.06, rate


@pytest.mark.parametrize("counts", [(-1, 10), (11, 10), (0, -1)])
def test_counts_outside_the_definition_are_refused(counts: tuple[int, int]) -> None:
    with pytest.raises(ValueError):
        wilson_interval(*counts)
    with pytest.raises(ValueError):
        two_proportion_test(*counts, 1, 2)
