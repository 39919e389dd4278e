"""Experiment: does an A/B test on live traffic pick the better model, and keep its promise?

    python -m bench.experiment [--salts 5] [--max-users 200000] [--aa-runs 20]
                               [--aa-users 10000] [--refit]
    python -m bench.experiment --quick   # tiny synthetic fits into a temporary folder and
                                         # RESULTS copy, printed

Simulated users on MovieLens-100k, offline. The default model (`python -m training
bootstrap`'s options, seed 0) is fitted and exported twice under runs/bench/experiment/: with
its history field (what bootstrap serves) and without it (the same options less the history);
a later run reuses those bundles unless --refit. Each bundle is loaded torch-free, as the API
loads it (service.served_model.ServedModel), and ranks the whole catalog for every MovieLens
user as the protocol's full-catalog test does: the user's training interactions and
validation item left out, the history model's window over the user's interactions before the
test item (the bundle holds them all; the window ends with the validation item), top 10. A
user *hits* with a model when their held-out next interaction (the test item, their latest)
is in that top 10.

A simulated user is a uniform draw of a MovieLens user, with replacement (943 users are too
few for a difference of a few points to reach p < 0.01), with an id of its own, `sim-<k>`.
A salted hash of that id puts it in arm A or B (half each), it is shown the arm's top 10 and
clicks when it hits: one Bernoulli trial per user, as service/experiment_stats.py assumes.

(a) A = without history, B = with. Users arrive one by one; after each, once both arms hold
    MIN_PER_ARM users, the pooled two-proportion z-test compares them; the race stops at the
    first p < 0.01, for each of --salts salts (the salt also draws the users). Looking after
    every user inflates the false-positive rate above 1% (see (b)); this part asks how many
    users a real difference needs, and whether the side the test picks is the better one.
(b) A/A: the history model in both arms, --aa-runs salts, --aa-users users each, one test at
    the end (the fixed horizon the test's 5% is promised for); the count of p < 0.05 with its
    binomial (Wilson) interval, then the same for 1,000 runs, and the rate when the test is
    looked at after every user and the run stops at the first p < 0.05 (peeking).
(c) The cost of a shadow variant on p50 needs variants in the service (issue 34, part 3): not
    measured here yet.

About 2 × the default fit (8 epochs of 9–13 s at low load; much longer on busy cores), then
under a minute for the simulation.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.catalog import SIMD
from bench.lib import training_api
from bench.lib.results import RESULTS, write_section
from bench.two_phase import cpu_flags
from bundle.two_phase import TWO_PHASE_FROM_ITEMS
from service.experiment_stats import normal_two_sided_p, two_proportion_test, wilson_interval
from service.served_model import ServedModel

OUT = Path("runs/bench/experiment")
TOP = 10
ALPHA_RACE = 0.01  # (a) stops at the first p below this
ALPHA_AA = 0.05  # (b) counts a false positive below this
MIN_PER_ARM = 100  # (a) and the peeking runs look once both arms hold this many users
BATCH = 256  # users ranked per onnxruntime call
WITH, WITHOUT = "with-history", "without-history"
QUICK_DATA = "synthetic:users=200,items=300,interactions=6000,categories=5,segments=3,seed=0"


@dataclass(frozen=True)
class Model:
    """One fitted arm: its bundle, what its fit measured, and who hits with it."""

    label: str
    bundle: Path
    fit_metrics: dict
    hits: np.ndarray  # (U,) bool, in the order of `users`

    @property
    def rate(self) -> float:
        return float(self.hits.mean())


def options_of(label: str, data: str | None, quick: bool) -> dict:
    """The default model's fit options, `--data` replaced where given; less the history
    field for the arm without it; the quick run's one small epoch."""
    options = training_api.default_options()
    if data:
        options["data"] = data
    if label == WITHOUT:
        options.pop("history")
        options.pop("history_weight")
    if quick:
        options |= {"epochs": 1, "dim": 8}
    return options


def bundle_of(label: str, options: dict, out: Path, refit: bool) -> Path | None:
    """The bundle exported earlier for the same options (None if none or --refit)."""
    recorded = out / f"{label}.json"
    if refit or not recorded.exists():
        return None
    record = json.loads(recorded.read_text())
    bundle = Path(record["bundle"])
    return bundle if record["options"] == options and (bundle / "manifest.json").exists() \
        else None


def fitted(options_by_label: dict[str, dict], out: Path, refit: bool
           ) -> tuple[dict[str, Path], list[str]]:
    """Each arm's bundle: reused, or fitted and exported (the arms in parallel processes);
    and the labels fitted now."""
    bundles = {label: bundle_of(label, options, out, refit)
               for label, options in options_by_label.items()}
    todo = [label for label, bundle in bundles.items() if bundle is None]
    with training_api.fit_workers(max(1, len(todo))) as pool:
        futures = {label: pool.submit(training_api.fit_and_export_in_worker,
                                      options_by_label[label], out / f"run-{label}",
                                      out / "models", label)
                   for label in todo}
        for label, future in futures.items():
            bundles[label] = future.result()
            (out / f"{label}.json").write_text(json.dumps(
                {"options": options_by_label[label], "bundle": str(bundles[label])}))
    return {label: bundle for label, bundle in bundles.items() if bundle is not None}, todo


def hits_of(bundle: Path, held: dict[str, tuple[str | None, str]], users: Sequence[str]
            ) -> np.ndarray:
    """Whether each user's test item is in the bundle's top 10 over the whole catalog, the
    training and validation items left out, the window holding the validation item."""
    model = ServedModel(bundle, threads=1, two_phase_items=TWO_PHASE_FROM_ITEMS)
    position = {str(item): p for p, item in enumerate(model.catalog.ids.tolist())}
    rows, excluded, targets = [], [], []
    for user in users:
        valid, test = held[user]
        at = model.training.position(user)
        if at is None:
            raise RuntimeError(f"{bundle}: user {user} is not among its training users")
        window: list[str] = []
        if model.profiles.history is not None:
            # the bundle's interactions are all of the user's, the held-out two included: the
            # window is over those before the test item (it ends with the validation item)
            every = model.profiles.history.trained(at)
            if not every or every[-1] != test:
                raise RuntimeError(f"{bundle}: user {user}'s latest interaction is not {test}")
            window = model.profiles.history.window(every[:-1])
        rows.append(model.profiles.encode(user, model.training.profile(at), window=window))
        seen = model.training.seen(at).astype(np.int64)
        held_back = [position[valid]] if valid is not None else []
        excluded.append(np.union1d(seen, held_back).astype(np.int64))
        targets.append(position[test])
    hits = np.zeros(len(users), bool)
    for start in range(0, len(users), BATCH):
        stop = start + BATCH
        tops = model.top_n(model.states(rows[start:stop]), TOP, excluded[start:stop])
        for k, (items, _) in enumerate(tops):
            hits[start + k] = targets[start + k] in items.tolist()
    return hits


def arm_of(salt: str, user: str) -> int:
    """0 (A) or 1 (B), half each, by a salted SHA-256 of the user id: sticky for a user and
    salt, independent across salts."""
    digest = hashlib.sha256(f"{salt}:{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 63


def draws(salt: str, n: int, population: int) -> np.ndarray:
    """The MovieLens users (positions) behind simulated users sim-0 .. sim-(n-1)."""
    seed = int.from_bytes(hashlib.sha256(f"draws:{salt}".encode()).digest()[:8], "big")
    return np.random.default_rng(seed).integers(0, population, size=n)


@dataclass(frozen=True)
class Race:
    """One (a) run: the arms' counts when it stopped (or hit the cap undecided)."""

    salt: str
    users: int
    hits: tuple[int, int]
    n: tuple[int, int]
    z: float
    p: float

    @property
    def decided(self) -> bool:
        return self.p < ALPHA_RACE

    @property
    def picked(self) -> str:
        return "—" if not self.decided else ("B" if self.z > 0 else "A")


def race(a: np.ndarray, b: np.ndarray, salt: str, max_users: int) -> Race:
    """(a): users one by one until p < ALPHA_RACE (both arms at MIN_PER_ARM first)."""
    arms, who = (a, b), draws(salt, max_users, len(a))
    hits, n = [0, 0], [0, 0]
    z, p = 0.0, 1.0
    for k in range(max_users):
        arm = arm_of(salt, f"sim-{k}")
        n[arm] += 1
        hits[arm] += int(arms[arm][who[k]])
        if min(n) >= MIN_PER_ARM:
            z, p = two_proportion_test(hits[0], n[0], hits[1], n[1])
            if p < ALPHA_RACE:
                break
    return Race(salt, sum(n), (hits[0], hits[1]), (n[0], n[1]), z, p)


def critical_z(alpha: float) -> float:
    """The |z| above which the test's two-sided p is below alpha (bisection on its own p, so
    `|z| > critical_z(alpha)` and `p < alpha` are the same event)."""
    low, high = 0.0, 40.0
    for _ in range(200):
        middle = (low + high) / 2
        low, high = (middle, high) if normal_two_sided_p(middle) >= alpha else (low, middle)
    return low


@dataclass(frozen=True)
class AaRun:
    p_end: float  # the one test at the fixed horizon
    peeked_positive: bool  # p < ALPHA_AA at any look after MIN_PER_ARM per arm


def aa_run(hits: np.ndarray, salt: str, users: int) -> AaRun:
    """(b): the same model in both arms; the test at the end, and whether any look would
    have stopped it at p < ALPHA_AA (the test's z computed at every look at once)."""
    who = draws(salt, users, len(hits))
    arm = np.array([arm_of(salt, f"sim-{k}") for k in range(users)], np.int64)
    clicked = hits[who].astype(np.int64)
    n_b = np.cumsum(arm)
    n_a = np.arange(1, users + 1) - n_b
    h_b = np.cumsum(clicked * arm)
    h_a = np.cumsum(clicked) - h_b
    _, p_end = two_proportion_test(int(h_a[-1]), int(n_a[-1]), int(h_b[-1]), int(n_b[-1]))
    look = np.minimum(n_a, n_b) >= MIN_PER_ARM
    pooled = (h_a + h_b) / np.maximum(n_a + n_b, 1)
    variance = pooled * (1 - pooled) * (1 / np.maximum(n_a, 1) + 1 / np.maximum(n_b, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(variance > 0, (h_b / np.maximum(n_b, 1) - h_a / np.maximum(n_a, 1))
                     / np.sqrt(variance), 0.0)
    stopped = look & (np.abs(z) > critical_z(ALPHA_AA))
    if stopped.any():  # the vectorised look agrees with the module's test where it stopped
        k = int(np.argmax(stopped))
        z_k, _ = two_proportion_test(int(h_a[k]), int(n_a[k]), int(h_b[k]), int(n_b[k]))
        if not np.isclose(z_k, z[k], rtol=1e-9):
            raise RuntimeError(f"peeking z {z[k]} differs from the test's {z_k}")
    return AaRun(p_end, bool(stopped.any()))


def fixed_sample(rate_a: float, rate_b: float, alpha: float, power: float) -> int:
    """Users in all (both arms, half each) a fixed-horizon pooled z-test needs to find rates
    rate_a and rate_b apart at two-sided `alpha` with probability `power` (the usual normal
    approximation, each arm's variance under the alternative)."""
    pooled = (rate_a + rate_b) / 2
    z_alpha, z_power = critical_z(alpha), critical_z(2 * (1 - power))
    spread = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + \
        z_power * math.sqrt(rate_a * (1 - rate_a) + rate_b * (1 - rate_b))
    return 2 * math.ceil(spread ** 2 / (rate_a - rate_b) ** 2)


def binomial_range(runs: int, p: float, mass: float = 0.95) -> tuple[int, int]:
    """The central range of Binomial(runs, p) holding at least `mass` (exact sums): how many
    false positives an exact test at level p gives in `runs` runs."""
    pmf = [math.comb(runs, k) * p ** k * (1 - p) ** (runs - k) for k in range(runs + 1)]
    cdf = np.cumsum(pmf)
    tail = (1 - mass) / 2
    return int(np.searchsorted(cdf, tail, side="right")), int(np.searchsorted(cdf, 1 - tail))


def share(count: int, runs: int) -> str:
    low, high = wilson_interval(count, runs)
    return f"{count} of {runs} ({count / runs:.1%}; 95% interval {low:.1%}–{high:.1%})"


def rate(hits: int, n: int) -> str:
    low, high = wilson_interval(hits, n)
    return f"{hits}/{n} = {hits / n:.3f} [{low:.3f}, {high:.3f}]"


def report(command: str, models: dict[str, Model], races: list[Race], aa: list[AaRun],
           aa_many: list[AaRun], aa_users: int, max_users: int, minutes: float,
           loads: tuple[float, float], flags: set[str], data: str, fitted_now: list[str]
           ) -> str:
    without, with_ = models[WITHOUT], models[WITH]
    better = "B" if with_.rate > without.rate else "A"
    expected = binomial_range(len(aa), ALPHA_AA)
    simd = [f for f in SIMD if f in flags]
    trained = " and ".join(f"{m.fit_metrics.get('train_seconds', float('nan')) / 60:.0f} min"
                           for m in (without, with_))
    fits = ("fits included" if len(fitted_now) == 2 else
            f"{'one bundle' if fitted_now else 'both bundles'} reused from an earlier run") + \
        f"; the fits trained {trained}, A and B"
    lines = [
        "## experiment: picking the better model on simulated traffic", "",
        f"Command: `{command}` ({minutes:.1f} min; {fits}). Load average "
        f"{loads[0]:.1f} at the start, {loads[1]:.1f} at the end; CPU flags "
        f"{', '.join(simd) if simd else 'unread (no /proc/cpuinfo flags)'}.", "",
        f"The default model (`python -m training bootstrap`'s options, seed 0) on `{data}`, "
        "fitted with its history field and without it, each exported and loaded torch-free "
        "as the API loads it. A user hits when their held-out latest interaction is in the "
        f"model's top {TOP} over the whole catalog (training and validation items left out; "
        "the history window ends with the validation item).", "",
        "| arm | model | fit: test HR@10 (99 sampled) | fit: full-catalog HR@10 | hits through "
        "the bundle, every user [95% Wilson] |", "|---|---|---|---|---|"]
    for arm, model in (("A", without), ("B", with_)):
        test = model.fit_metrics.get("test", {})
        lines.append(f"| {arm} | {model.label} | {test.get('hr@10', float('nan')):.4f} | "
                     f"{test.get('full_hr@10', float('nan')):.4f} | "
                     f"{rate(int(model.hits.sum()), len(model.hits))} |")
    decided = [r for r in races if r.decided]
    right = [r for r in decided if r.picked == better]
    counts = [r.users for r in decided]
    lines += [
        "", f"(a) A against B, users one by one (each a uniform draw of a user above, with "
        f"replacement, arm by a salted hash of its own id); after each, once both arms hold "
        f"{MIN_PER_ARM}, the pooled two-proportion z-test; stop at the first p < "
        f"{ALPHA_RACE} (at most {max_users:,} users). The better arm over every user is "
        f"{better}.", "",
        "| salt | users | A: hits/n = rate [95%] | B: hits/n = rate [95%] | z | p | picked |",
        "|---|---|---|---|---|---|---|"]
    for r in races:
        lines.append(f"| {r.salt} | {r.users:,} | {rate(r.hits[0], r.n[0])} | "
                     f"{rate(r.hits[1], r.n[1])} | {r.z:+.2f} | {r.p:.4f} | {r.picked} |")
    summary = (f"median {statistics.median(counts):,.0f}, {min(counts):,}–{max(counts):,}"
               if counts else "none decided")
    lines += [
        "", f"Decided in {len(decided)} of {len(races)} salts, the better arm ({better}) in "
        f"{len(right)}; users it took: {summary}. Looking after every user makes a stop "
        "likelier than the nominal 1% even without a difference (the peeking rate in (b)); "
        "a live experiment should fix its sample size first (or correct for the looks): "
        f"for these two rates, a single test at p < {ALPHA_RACE} with 80% power needs "
        f"{fixed_sample(without.rate, with_.rate, ALPHA_RACE, 0.8):,} users in all.", "",
        f"(b) A/A: the model with history in both arms, {aa_users:,} users a run, one test "
        f"at the end. p < {ALPHA_AA} in "
        f"{share(sum(r.p_end < ALPHA_AA for r in aa), len(aa))} runs (different salts); in "
        f"{len(aa)} runs an exact 5% test gives {expected[0]}–{expected[1]} such runs with "
        "95% probability, so this alone says little. Over "
        f"{len(aa_many):,} runs: "
        f"{share(sum(r.p_end < ALPHA_AA for r in aa_many), len(aa_many))}. Peeking (a look "
        f"after every user once both arms hold {MIN_PER_ARM}, stopping at the first p < "
        f"{ALPHA_AA}) over the same {len(aa_many):,} runs: "
        f"{share(sum(r.peeked_positive for r in aa_many), len(aa_many))}.", "",
        "(c) The cost of a shadow variant on p50: not measured here; it needs variants in "
        "the service (issue 34, part 3) and is measured with them (section `variants`)."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.experiment",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--salts", type=int, default=5, help="(a): races, one salt each")
    parser.add_argument("--max-users", type=int, default=200_000, help="(a): at most")
    parser.add_argument("--aa-runs", type=int, default=20, help="(b): A/A runs")
    parser.add_argument("--aa-users", type=int, default=10_000, help="(b): users a run")
    parser.add_argument("--aa-many", type=int, default=1000,
                        help="(b): A/A runs of the tighter estimate and of peeking")
    parser.add_argument("--refit", action="store_true", help="fit afresh, not reuse bundles")
    parser.add_argument("--quick", action="store_true",
                        help="tiny synthetic fits into a temporary folder; print, keep "
                             "RESULTS.md as it is (unless --results)")
    parser.add_argument("--results", type=Path, default=None,
                        help="the RESULTS.md to write the section into")
    args = parser.parse_args(argv)
    for name in ("salts", "max_users", "aa_runs", "aa_users", "aa_many"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    started, load = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gmlrec-experiment-") as tmp:
        out = Path(tmp) if args.quick else OUT
        results = args.results or (Path(tmp) / "RESULTS.md" if args.quick else RESULTS)
        data = QUICK_DATA if args.quick else None
        options = {label: options_of(label, data, args.quick) for label in (WITHOUT, WITH)}
        spec = options[WITH]["data"]
        bundles, fitted_now = fitted(options, out, args.refit)
        held = training_api.held_out_items(spec)
        users = sorted(held)
        models = {label: Model(label, bundle,
                               json.loads((out / f"run-{label}" / "metrics.json").read_text())
                               if (out / f"run-{label}" / "metrics.json").exists() else {},
                               hits_of(bundle, held, users))
                  for label, bundle in bundles.items()}
        a, b = models[WITHOUT].hits, models[WITH].hits
        races = [race(a, b, f"race-{s}", args.max_users) for s in range(args.salts)]
        aa = [aa_run(b, f"aa-{r}", args.aa_users) for r in range(args.aa_runs)]
        aa_many = [aa_run(b, f"aa-many-{r}", args.aa_users) for r in range(args.aa_many)]
        cpuinfo = Path("/proc/cpuinfo")
        flags = cpu_flags(cpuinfo.read_text()) if cpuinfo.exists() else set()
        command = "python -m bench.experiment " + " ".join(
            sys.argv[1:] if argv is None else argv)
        body = report(command.strip(), models, races, aa, aa_many, args.aa_users,
                      args.max_users, (time.monotonic() - started) / 60,
                      (load, os.getloadavg()[0]), flags, spec, fitted_now)
        write_section("experiment", body, results)
    print(body)


if __name__ == "__main__":
    main()
