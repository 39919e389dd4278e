"""bench.experiment: its quick run end to end (the bundles' hits are the fit's own full-catalog
HR@10), the salted split, the race on planted arms, and the vectorised peeking against the
test looked at user by user."""

from __future__ import annotations

import re

import numpy as np
import pytest

from bench import experiment
from service.experiment_stats import normal_two_sided_p, two_proportion_test


def test_the_quick_run_writes_its_section_and_counts_hits_as_the_fit_does(tmp_path):
    results = tmp_path / "RESULTS.md"
    experiment.main(["--quick", "--results", str(results), "--salts", "2", "--max-users",
                     "3000", "--aa-runs", "20", "--aa-users", "1000", "--aa-many", "20"])
    text = results.read_text()
    assert "<!-- experiment:start -->" in text and "<!-- experiment:end -->" in text
    assert "CPU flags" in text and "(c) The cost of a shadow variant" in text
    rows = re.findall(r"^\| [AB] \| (\S+) \| [\d.]+ \| ([\d.]+) \| (\d+)/(\d+) = ", text, re.M)
    assert [r[0] for r in rows] == [experiment.WITHOUT, experiment.WITH]
    for _, full_hr, hits, users in rows:
        # the bundle, ranked as the API ranks, against the fit's torch evaluation of the same
        # protocol: equal up to a tie or a float32 rounding flipping a user or two
        assert abs(int(hits) / int(users) - float(full_hr)) <= 2 / int(users) + 1e-9
    assert len(re.findall(r"^\| race-\d \|", text, re.M)) == 2
    assert re.search(r"p < 0\.05 in \d+ of 20 \(", text)


def test_the_salted_split_is_sticky_half_and_half_and_differs_by_salt():
    ids = [f"user-{k}" for k in range(100_000)]
    arms = np.array([experiment.arm_of("s", u) for u in ids])
    assert abs(arms.mean() - 0.5) < 0.01  # within a point over 100,000 users
    assert all(experiment.arm_of("s", u) == a for u, a in zip(ids[:1000], arms[:1000]))
    other = np.array([experiment.arm_of("t", u) for u in ids[:10_000]])
    assert 0.45 < (other == arms[:10_000]).mean() < 0.55  # independent across salts


def test_the_race_picks_the_planted_better_arm():
    a = np.zeros(100, bool)
    a[:10] = True  # 10%
    b = np.zeros(100, bool)
    b[:30] = True  # 30%
    result = experiment.race(a, b, "planted", 100_000)
    assert result.decided and result.picked == "B" and result.z > 0
    assert sum(result.n) == result.users and min(result.n) >= experiment.MIN_PER_ARM
    assert two_proportion_test(result.hits[0], result.n[0], result.hits[1],
                               result.n[1]) == (result.z, result.p)
    same = experiment.race(a, a, "planted", 2_000)
    assert same.users <= 2_000


def test_peeking_matches_the_test_looked_at_after_every_user():
    rng = np.random.default_rng(3)
    hits = rng.random(300) < 0.2
    for r in range(15):
        salt, users = f"peek-{r}", 600
        run = experiment.aa_run(hits, salt, users)
        who = experiment.draws(salt, users, len(hits))
        counts = {0: [0, 0], 1: [0, 0]}  # arm -> [hits, n]
        stopped = False
        for k in range(users):
            arm = experiment.arm_of(salt, f"sim-{k}")
            counts[arm][0] += int(hits[who[k]])
            counts[arm][1] += 1
            if min(counts[0][1], counts[1][1]) >= experiment.MIN_PER_ARM:
                stopped |= two_proportion_test(*counts[0], *counts[1])[1] < 0.05
        assert run.peeked_positive == stopped
        assert run.p_end == pytest.approx(two_proportion_test(*counts[0], *counts[1])[1])


def test_the_critical_z_is_where_the_p_value_crosses_alpha():
    z = experiment.critical_z(0.05)
    assert z == pytest.approx(1.959964, abs=1e-6)
    assert normal_two_sided_p(z) >= 0.05 > normal_two_sided_p(np.nextafter(z, 10))


def test_the_fixed_sample_finds_the_difference_as_often_as_promised():
    # 10% against 16%, p < 0.01, 80% power: simulate the fixed-horizon test at that size
    n = experiment.fixed_sample(0.10, 0.16, 0.01, 0.8)
    # by hand: (2.5758·sqrt(2·0.13·0.87) + 0.8416·sqrt(0.09 + 0.1344))² / 0.06² = 732.4
    assert n == 2 * 733
    rng = np.random.default_rng(5)
    found = [two_proportion_test(int(rng.binomial(n // 2, 0.10)), n // 2,
                                 int(rng.binomial(n // 2, 0.16)), n // 2)[1] < 0.01
             for _ in range(2000)]
    assert 0.77 <= np.mean(found) <= 0.83


def test_the_binomial_range_is_the_exact_one():
    assert experiment.binomial_range(20, 0.05) == (0, 3)  # P(X <= 3) = 0.984, P(X <= 2) = 0.92
    low, high = experiment.binomial_range(1000, 0.05)
    assert low < 50 < high
