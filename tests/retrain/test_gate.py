"""The gate's arithmetic against its definition on random per-case results."""

from __future__ import annotations

import math

import numpy as np

from training.retrain.gate import decide, paired
from training.retrain.judge import Judged


def judged(rng, n, p):
    hit = (rng.random(n) < p).astype(float)
    return Judged(hit, hit * rng.random(n), (rng.random(n) < p / 2).astype(float))


def test_paired_is_the_mean_and_standard_error_of_the_differences():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = rng.random(50), rng.random(50)
        d = a - b
        got = paired(a, b, 1.96)
        se = math.sqrt(sum((x - d.mean()) ** 2 for x in d) / (len(d) - 1) / len(d))
        assert math.isclose(got["mean"], d.mean(), abs_tol=1e-6)
        assert math.isclose(got["se"], se, abs_tol=1e-6)
        assert math.isclose(got["upper"], d.mean() + 1.96 * se, abs_tol=2e-6)


def test_a_clearly_worse_candidate_is_refused_and_an_equal_one_passes():
    rng = np.random.default_rng(1)
    served = judged(rng, 400, 0.6)
    worse = judged(rng, 400, 0.2)
    assert not decide(worse, served, 1.96, 20).publish
    assert decide(served, served, 1.96, 20).publish  # identical: d = 0, not worse
    better = judged(rng, 400, 0.9)
    verdict = decide(better, served, 1.96, 20)
    assert verdict.publish and verdict.differences["hr@10"]["mean"] > 0


def test_too_few_cases_are_refused():
    rng = np.random.default_rng(2)
    a = judged(rng, 5, 0.9)
    verdict = decide(a, judged(rng, 5, 0.1), 1.96, 20)
    assert not verdict.publish and "fewer than --min-cases 20" in verdict.reason
