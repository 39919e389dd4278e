"""History in serving: what one recorded interaction costs, and how soon /recommend shows it.

    python -m bench.history_serving [--model gmlfm-dnn+gem] [--rounds 200] [--seconds 120]
                                    [--redis-url redis://127.0.0.1:6379/0 | --own-redis]

For N = 10, 50, 200 it fits a small synthetic model with `--history N` (one epoch, k = 64:
training adds nothing to a timing) and exports it, then:

(a) per-interaction cost, in this process, one thread, from a known user whose window holds
    N items: a recompute (window → row → OnnxScorer.user_state, what the service paid per
    interaction before the state moved), the numpy reference's user_state, a build of the
    pair sums and state (bundle/incremental.py: once per user and model version), and what
    the write path now pays, one interaction moving the state (IncrementalState.update: the
    oldest item leaves, the new one enters). The moved state is checked against the
    recompute first. Medians (best) over interleaved rounds.
(b) freshness over HTTP, on the N = 50 bundle: `python -m service` (one worker) on a free
    loopback port against a real Redis, its keys under a private GMLREC_REDIS_PREFIX deleted
    after. Each round POSTs one new item to /users/{id}/interactions, then at once GETs
    /recommend/{id}?exclude_seen=false (the time from the POST's answer to the GET's is the
    measure), then GETs it again (a cached state). A round reflects the write when its answer
    differs from the round before and equals the top 10 computed here from the window that
    includes the write. At most --rounds rounds or --seconds seconds; the server is killed at
    the end whatever happens.

About 1.5 min on the 2 shared cores at load average 3–4, most of it the three fits; the bundles
and runs go under runs/bench/history_serving/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import redis

from bench.lib import training_api
from bench.lib.grid import VARIANTS
from bench.lib.results import RESULTS, write_section
from bench.lib.timing import Timing, interleaved
from bench.serve import ROOT, Server, wait_ready
from bundle import EncodedUser, reference_scorer
from bundle.two_phase import TWO_PHASE_FROM_ITEMS
from service.served_model import ServedModel
from service.stores.keys import Keys
from tests.support.local_redis import RedisServer
from tests.support.ports import free_port

OUT = Path("runs/bench/history_serving")
DATA = "synthetic:users=50,items=400,interactions=1500,seed=0"
SIZES = (10, 50, 200)
SERVED_SIZE = 50
SHARED_REDIS = "redis://127.0.0.1:6379/0"
TOP = 10
TIMING_ROUNDS = 100
REQUEST_TIMEOUT_S = 10.0


def fit_and_export(model: str, size: int, weight: str) -> Path:
    """`model` fitted one epoch on DATA with --history `size`, exported; its bundle folder."""
    from training.export import export_run

    run = OUT / f"run-{size}"
    training_api.fit({**VARIANTS[model], "data": DATA, "history": size,
                      "history_weight": weight, "epochs": 1}, run)
    return export_run(run, OUT / "models", f"history{size}")


@dataclass(frozen=True)
class Probe:
    """A known user of a served model and the items recorded for it."""

    model: ServedModel
    user: str
    position: int

    @staticmethod
    def first_user(model: ServedModel) -> Probe:
        user = str(model.bundle.users.ids[0])
        return Probe(model, user, model.training.position(user))

    def row(self, recorded: Sequence[str]) -> EncodedUser:
        """The user's row with its window over its training items, then `recorded`."""
        window = self.model.training.window(self.position, recorded)
        return self.model.profiles.encode(self.user, self.model.training.profile(self.position),
                                          window=window)

    def state(self, recorded: Sequence[str]) -> np.ndarray:
        return self.model.states([self.row(recorded)])

    def top(self, recorded: Sequence[str]) -> list[str]:
        """The top ids /recommend?exclude_seen=false should answer, computed here."""
        items, _ = self.model.top_n(self.state(recorded), TOP, [np.zeros(0, np.int64)])[0]
        return [str(self.model.catalog.ids[p]) for p in items.tolist()]

    def fresh_items(self, seed: int = 0) -> list[str]:
        """Catalog items outside the user's training interactions, shuffled: each one
        recorded moves the window (while fewer than N came since it was last recorded)."""
        trained = set(self.model.profiles.history.trained(self.position))
        ids = [str(i) for i in self.model.catalog.ids.tolist() if str(i) not in trained]
        return [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]


def state_cost(bundle: Path, rounds: int) -> dict:
    """(a) for one bundle: the window and row, OnnxScorer.user_state, the numpy reference and
    all of it together, from a row whose window holds N items."""
    model = ServedModel(bundle, threads=1, two_phase_items=TWO_PHASE_FROM_ITEMS)
    probe = Probe.first_user(model)
    size = model.profiles.history.size
    recorded = probe.fresh_items()[:size]
    row = probe.row(recorded)
    filled = int((row.val[model.profiles.history.columns] > 0).sum())
    if filled != size:
        raise RuntimeError(f"the window holds {filled} items, not {size}")
    idx, val = row.idx[None], row.val[None]
    reference = reference_scorer(model.bundle)
    if not np.array_equal(model.scorer.user_state(idx, val), reference.user_state(idx, val)):
        raise RuntimeError("OnnxScorer.user_state and the numpy reference disagree")
    incremental, window = model.incremental, model.training.window(probe.position, recorded)
    profile = model.profiles.encode(probe.user, model.training.profile(probe.position))
    _, sums = incremental.build(profile.idx, profile.val, window)
    new = probe.fresh_items()[size]
    moved = incremental.update(profile.idx, profile.val, window, sums, [new])[1]
    recomputed = probe.state([*recorded, new])[0]
    if not np.allclose(moved, recomputed, rtol=1e-5, atol=1e-5 * np.abs(recomputed).max()):
        raise RuntimeError("the moved state is not the recomputed one")
    times = interleaved({"all": (lambda: probe.state(recorded), 1),
                         "numpy": (lambda: reference.user_state(idx, val), 1),
                         "build": (lambda: incremental.build(profile.idx, profile.val, window),
                                   1),
                         "move": (lambda: incremental.update(profile.idx, profile.val, window,
                                                            sums, [new]), 1)}, rounds)
    return {"size": size, "width": idx.shape[1], "state": model.state_size, "times": times}


@contextlib.contextmanager
def serving(bundle: Path, redis_url: str, prefix: str) -> Iterator[Server]:
    """`python -m service`, one worker, on a free loopback port, serving `bundle` with its
    Redis keys under `prefix`; terminated (then killed) on the way out."""
    with tempfile.TemporaryDirectory(prefix="gmlrec-bench-") as models:
        (Path(models) / bundle.parent.name).mkdir()
        (Path(models) / bundle.parent.name / bundle.name).symlink_to(bundle.resolve())
        port = free_port()
        env = {**os.environ, "GMLREC_MODELS_DIR": models, "GMLREC_HOST": "127.0.0.1",
               "GMLREC_PORT": str(port), "GMLREC_WORKERS": "1", "GMLREC_REDIS_URL": redis_url,
               "GMLREC_REDIS_PREFIX": prefix, "GMLREC_ORT_THREADS": "1",
               "GMLREC_RELOAD_INTERVAL_S": "0", "GMLREC_LOG_LEVEL": "warning"}
        process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            server = Server(process, f"http://127.0.0.1:{port}")
            wait_ready(server)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@contextlib.contextmanager
def private_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no one else uses on that Redis; every key under it deleted after."""
    prefix = f"gmlrec-bench-history-{os.getpid()}-{secrets.token_hex(4)}"
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    pattern = Keys(prefix).pattern()
    if next(client.scan_iter(match=pattern, count=1000), None) is not None:
        client.close()
        raise RuntimeError(f"Redis already holds keys under {prefix}; nothing touched")
    try:
        yield prefix
    finally:
        for key in list(client.scan_iter(match=pattern, count=1000)):
            client.delete(key)
        client.close()


@contextlib.contextmanager
def redis_at(url: str | None) -> Iterator[str]:
    """The Redis to serve with: `url`, or (None) a redis-server of this run's own."""
    if url is not None:
        yield url
        return
    own = RedisServer().start()
    try:
        yield own.url
    finally:
        own.stop()


@dataclass(frozen=True)
class Freshness:
    post_ms: list[float]  # the interactions POST, per round
    after_write_ms: list[float]  # POST answered -> GET answered, per round
    cached_ms: list[float]  # the GET repeated at once
    changed: int  # rounds whose answer differs from the round before
    expected: int  # rounds whose answer equals the top 10 computed here with the write
    repeated: int  # rounds whose repeated GET equals the first

    @property
    def rounds(self) -> int:
        return len(self.after_write_ms)


def recommend(client: httpx.Client, user: str) -> tuple[list[str], list[float]]:
    answer = client.get(f"/recommend/{user}", params={"n": TOP, "exclude_seen": "false"})
    answer.raise_for_status()
    items = answer.json()["items"]
    return [i["item_id"] for i in items], [i["score"] for i in items]


def freshness(server: Server, probe: Probe, rounds: int, seconds: float) -> Freshness:
    """(b): POST one new item, GET at once, GET again; `rounds` times at most, `seconds`
    at most."""
    posted, after, cached, changed, expected, repeated = [], [], [], 0, 0, 0
    fresh, recorded = probe.fresh_items(seed=1), []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=server.base, timeout=REQUEST_TIMEOUT_S) as client:
        previous = recommend(client, probe.user)
        for r in range(rounds):
            if time.monotonic() > deadline:
                break
            item = fresh[r % len(fresh)]
            start = time.perf_counter()
            client.post(f"/users/{probe.user}/interactions",
                        json={"item_ids": [item]}).raise_for_status()
            posted.append(1e3 * (time.perf_counter() - start))
            start = time.perf_counter()
            answer = recommend(client, probe.user)
            after.append(1e3 * (time.perf_counter() - start))
            start = time.perf_counter()
            again = recommend(client, probe.user)
            cached.append(1e3 * (time.perf_counter() - start))
            recorded.append(item)
            changed += answer != previous
            expected += answer[0] == probe.top(recorded)
            repeated += again == answer
            previous = answer
    return Freshness(posted, after, cached, changed, expected, repeated)


def measure_http(bundle: Path, redis_url: str | None, rounds: int, seconds: float
                 ) -> Freshness:
    probe = Probe.first_user(ServedModel(bundle, threads=1,
                                         two_phase_items=TWO_PHASE_FROM_ITEMS))
    with redis_at(redis_url) as url, private_prefix(url) as prefix, \
            serving(bundle, url, prefix) as server:
        return freshness(server, probe, rounds, seconds)


def cost_table(costs: list[dict]) -> list[str]:
    lines = ["| N | row width | state floats | recompute: window → row → onnxruntime | numpy "
             "reference user_state | build: pair sums + state | move by one interaction | "
             "recompute ÷ move |", "|---" * 8 + "|"]
    for c in costs:
        t: dict[str, Timing] = c["times"]
        lines.append(f"| {c['size']} | {c['width']} | {c['state']:,} | {t['all']} | "
                     f"{t['numpy']} | {t['build']} | {t['move']} | "
                     f"{t['all'].median / t['move'].median:.1f}× |")
    return lines


def percentiles(values: list[float]) -> str:
    p50, p99 = np.percentile(values, [50, 99])
    return f"{p50:.2f} | {p99:.2f} | {max(values):.2f}"


def http_lines(fresh: Freshness) -> list[str]:
    n = fresh.rounds
    verdict = "every round" if fresh.changed == fresh.expected == n else \
        f"NOT every round ({n - min(fresh.changed, fresh.expected)} missed)"
    return ["| request | p50 ms | p99 ms | max ms | rounds |", "|---|---|---|---|---|",
            f"| POST /users/{{id}}/interactions (moves the state) | "
            f"{percentiles(fresh.post_ms)} | {n} |",
            f"| GET /recommend right after the POST's answer | "
            f"{percentiles(fresh.after_write_ms)} | {n} |",
            f"| the same GET again at once | {percentiles(fresh.cached_ms)} | {n} |", "",
            f"Reflected the write: {verdict}. {fresh.changed} of {n} answers differed from the "
            f"round before; {fresh.expected} of {n} equalled the top {TOP} computed in process "
            f"from the window that includes the write; the repeated GET equalled the first in "
            f"{fresh.repeated} of {n}."]


def report(command: str, model: str, weight: str, costs: list[dict], fresh: Freshness,
           redis_url: str | None, load: tuple[float, float]) -> str:
    where = (f"the Redis at {redis_url}, keys under a private prefix deleted after"
             if redis_url else "a redis-server of its own")
    return "\n".join([
        "## history-serving: what a recorded interaction costs, and how soon it shows", "",
        f"Command: `{command}`. {model} fitted one epoch with `--history N --history-weight "
        f"{weight}` (k = 64) on `{DATA}` for each N and exported (training adds nothing to "
        "a timing).", "",
        "(a) The state of a known user whose window holds N items, in process, one thread; "
        f"ms, median (best) over {TIMING_ROUNDS} interleaved rounds. *Recompute* is what the "
        "service paid per interaction before states moved (the first read after a write "
        "recomputed the state from the window). *Build* makes the pair sums and the state "
        "from scratch (once per user and model version). *Move* is what a write pays now: "
        "one new item enters the full window and its oldest leaves (bundle/incremental.py); "
        "its state equals the recompute (checked first, 1e-5).", "",
        *cost_table(costs), "",
        f"(b) Freshness over HTTP, the N = {SERVED_SIZE} bundle: `python -m service` (one "
        f"worker, onnxruntime 1 thread) on loopback against {where}. Each round POSTs one "
        "new item to /users/{id}/interactions, then at once GETs "
        f"/recommend/{{id}}?exclude_seen=false (n = {TOP}), then GETs it again; the client, "
        "the server and Redis share the machine's cores.", "",
        *http_lines(fresh), "",
        f"Load average {load[0]:.1f} at the start, {load[1]:.1f} at the end."])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history_serving",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(VARIANTS), default="gmlfm-dnn+gem")
    parser.add_argument("--weight", choices=("sqrt", "mean"), default="sqrt")
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                        help=f"the N of (a); must hold {SERVED_SIZE}, the bundle of (b)")
    parser.add_argument("--rounds", type=int, default=200, help="(b): at most this many")
    parser.add_argument("--seconds", type=float, default=120.0, help="(b): at most this long")
    redis_choice = parser.add_mutually_exclusive_group()
    redis_choice.add_argument("--redis-url", default=SHARED_REDIS)
    redis_choice.add_argument("--own-redis", action="store_true",
                              help="start a redis-server of its own instead")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="the RESULTS.md to write the section into")
    args = parser.parse_args(argv)
    if SERVED_SIZE not in args.sizes:
        parser.error(f"--sizes must hold {SERVED_SIZE}, the bundle of (b)")
    load = os.getloadavg()[0]
    bundles = {n: fit_and_export(args.model, n, args.weight) for n in sorted(set(args.sizes))}
    costs = [state_cost(b, TIMING_ROUNDS) for b in bundles.values()]
    redis_url = None if args.own_redis else args.redis_url
    fresh = measure_http(bundles[SERVED_SIZE], redis_url, args.rounds, args.seconds)
    command = "python -m bench.history_serving " + " ".join(
        sys.argv[1:] if argv is None else argv)
    body = report(command.strip(), args.model, args.weight, costs, fresh, redis_url,
                  (load, os.getloadavg()[0]))
    write_section("history-serving", body, args.results)
    print(body)


if __name__ == "__main__":
    main()
