"""A living catalog: what added items cost /recommend, and how well items the fit never saw rank.

    python -m bench.catalog [--part serving cold-start] [--items 100000]
                            [--added 1000 100000] [--requests 600] [--put-concurrency 8]
                            [--seeds 0 1 2] [--jobs 2] [--data movielens-100k]
    python -m bench.catalog --smoke --data SPEC --results PATH   # tiny sizes, seconds

1. serving (section catalog-serving): a synthetic GML-FM-dnn bundle of --items items (k = 64,
   one layer, random weights, as bench.scale_out's) served by three `python -m service` (one
   worker each) on one Redis of its own, each under its own GMLREC_REDIS_PREFIX and so its
   own catalog overlay: none added, and each --added count of new items PUT /items/{id}
   (features drawn from the bundle's own items: a random item's category; new ids), timed
   at --put-concurrency. Then GET /recommend/{user}?n=10 at concurrency 1, the three taking
   turns over rounds (each round in another order) so that load drift hits them alike: p50,
   p99, the ratio to none, and the worker's memory. Each server's answers for a few users
   are checked against brute force over the union (the bundle's numpy reference scorer
   over its catalog, AddedItems.score over the added items).
2. cold-start (section catalog-cold-start), per seed: a seeded 10% of MovieLens-100k's
   items is held out with every interaction it has (bench/lib/held_out.py: the fit's data
   has no trace of them); the default model's recipe (training/bootstrap.py) is fitted on
   the rest and exported, served in process (create_app, in-process store), and the held
   items are added through PUT /items with their genres (title and year as display: the
   model has no year field). Every interaction with a held item is then a case
   (bench/lib/cold_start.py): the item ranked among 99 other held items its user never
   interacted with by /score for that user, against genre popularity and a random order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench.lib import training_api
from bench.lib.cold_start import (
    Cases,
    Genre,
    Hits,
    cases,
    expected_hits,
    genre_popularity,
    held_out_items,
    rank_correlation,
    top_genre,
)
from bench.lib.held_out import item_values
from bench.lib.http_load import LoadResult, encode, load
from bench.lib.results import RESULTS, mean_std, write_section
from bench.lib.synthetic_bundle import export_synthetic
from bench.scale_out import Memory, Server, drive, process_memory, serving
from bench.two_phase import cpu_flags
from bundle import AddedItems, load_bundle, reference_scorer
from bundle import format as fmt
from service.app import create_app
from service.settings import Settings
from tests.support.local_redis import RedisServer
from tests.support.processes import workers_of
from training.bootstrap import DEFAULT_OPTIONS

OUT = Path("runs/bench/catalog")
SPEC = "synthetic:users=1000,items={items},interactions=20000,seed=0"  # bench.scale_out's
ROUNDS, USERS, CHECKED, N = 10, 200, 5, 10
PAST = 20  # the deep check's answer reaches this many items past the first added one
MAX_N = 1_000_000  # GMLREC_MAX_N of the servers, so that the deep check can ask that far
RATIO_TARGET = 1.2  # p50 with 1,000 added at most this times p50 with none
SHARE, NEGATIVES = 0.1, 99
SIMD = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
SMOKE = {"items": 2000, "added": [20, 200], "requests": 40, "seeds": [0],
         "options": {"epochs": 1}}


# ---- 1. serving ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Served:
    """One server's measures: `added` items PUT into its overlay."""

    added: int
    put: LoadResult | None  # the PUTs, None for the server with none
    first_ms: float  # the first /recommend after the PUTs (its union view built)
    latency: LoadResult  # every timed round's requests
    memory: Memory  # the worker after serving
    exact: int  # of the CHECKED users' top N, those equal to brute force
    deep: int  # of their top n reaching PAST items beyond the first added item, those equal
    added_shown: int  # items of their top N that were added items
    first_added: tuple[int | None, ...]  # per checked user, the first added item's rank


def new_items(bundle_path: Path, count: int) -> list[tuple[str, dict]]:
    """`count` new items, ids `new-<k>`, each with the item-side values (its id's aside) of
    a random catalog item, as a shop adds items like those it has."""
    bundle = load_bundle(bundle_path, verify=False)
    id_field = bundle.manifest[fmt.ITEM_ID_FIELD]
    picks = np.random.default_rng(0).integers(len(bundle.catalog), size=count)
    return [(f"new-{k}", {f: v for f, v in bundle.catalog.details(int(p))["features"].items()
                          if f != id_field}) for k, p in enumerate(picks.tolist())]


def put_all(server: Server, items: list[tuple[str, dict]], concurrency: int) -> LoadResult:
    """PUT every item, `concurrency` at a time; a refusal stops the bench."""
    bodies = [encode("PUT", f"/items/{item_id}", {"features": features,
                                                  "display": {"title": f"New item {item_id}"}})
              for item_id, features in items]
    result = asyncio.run(load("127.0.0.1", server.port, bodies.__getitem__, concurrency,
                              len(bodies), 24 * 3600))
    if result.failures or result.requests != len(bodies):
        raise RuntimeError(f"{result.failures} of {len(bodies)} PUT /items failed")
    return result


def answer(server: Server, user: str, n: int = N) -> list[tuple[str, float]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/recommend/{user}?n={n}",
                                timeout=120) as r:
        return [(i["item_id"], i["score"]) for i in json.load(r)["items"]]


class BruteForce:
    """The union's exact top n for a known user: every catalog item by the bundle's numpy
    reference, every added item by AddedItems.score, the user's training items left out."""

    def __init__(self, bundle_path: Path, items: list[tuple[str, dict]]):
        self.bundle = load_bundle(bundle_path, verify=False)
        self.reference = reference_scorer(self.bundle)
        self.added = AddedItems(self.bundle, self.reference)
        self.parts = self.added.parts([self.added.encode(f, i) for i, f in items])
        self.ids = [str(i) for i in self.bundle.catalog.ids.tolist()] + [i for i, _ in items]

    def scores(self, user: str, added: int) -> tuple[dict[str, float], list[str]]:
        """Every union item's score by id, and every id ranked, best first (ties by union
        position), with `added` of the items added."""
        position = self.bundle.users.position(user)
        assert position is not None, user
        state = self.reference.user_state(*(a[None] for a in self.bundle.users.row(position)))
        scores = np.concatenate([
            self.reference.catalog_scores(state)[0],
            self.added.score(state, self.parts.take(np.arange(added)))[0]]).astype(np.float64)
        scores[self.bundle.users.seen_items(position)] = -np.inf
        best = np.lexsort((np.arange(len(scores)), -scores))
        best = best[np.isfinite(scores[best])]
        by_id = dict(zip(self.ids[:len(scores)], scores.tolist()))
        return by_id, [self.ids[k] for k in best.tolist()]

    def checked(self, server: Server, user: str, added: int
                ) -> tuple[bool, bool, int, int | None]:
        """Whether the server's top N for `user` is brute force's; whether its top n reaching
        PAST items beyond the union's first added item is too (True where none are added);
        how many added items its top N holds; and the first added item's rank (from 1)."""
        by_id, ranked = self.scores(user, added)
        top = answer(server, user)
        first = next((k for k, i in enumerate(ranked) if i.startswith("new-")), None)
        deep = first is None or same_answer(answer(server, user, first + PAST), by_id,
                                            ranked[:first + PAST])
        return (same_answer(top, by_id, ranked[:N]), deep,
                sum(i.startswith("new-") for i, _ in top), None if first is None else first + 1)


def same_answer(got: list[tuple[str, float]], by_id: dict[str, float], best: list[str],
                relative: float = 1e-4) -> bool:
    """Whether an HTTP answer is brute force's: each item's score is its own (onnxruntime's
    float32 against numpy's, `relative` of the scale), the scores rank by rank are brute
    force's, and the ids are, wherever brute force's scores are not within that of a tie
    (tied items may come in another order: the overlay lists items in the order the
    concurrent PUTs reached the store)."""
    want = np.array([by_id[i] for i in best])
    have = np.array([s for _, s in got])
    tolerance = relative * max(float(np.abs(want).max(initial=0.0)), 1e-6)
    if len(got) != len(best) or not np.allclose(have, want, rtol=0, atol=tolerance):
        return False
    if any(abs(by_id.get(i, np.inf) - s) > tolerance for i, s in got):
        return False
    tied = np.abs(np.diff(want)) <= tolerance
    near = np.zeros(len(want), bool)
    near[:-1] |= tied
    near[1:] |= tied
    return all(g == w or n for (g, _), w, n in zip(got, best, near.tolist()))


def serve_all(bundle_path: Path, redis_url: str, args: argparse.Namespace
              ) -> tuple[list[Served], list[float]]:
    """The three servers side by side (the module doc); the load averages seen per round."""
    items = new_items(bundle_path, max(args.added))
    users = [str(u) for u in load_bundle(bundle_path, verify=False).users.ids[:USERS]]
    counts = [0, *args.added]
    loads: list[float] = []
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as cache:
        servers = {a: stack.enter_context(serving(bundle_path, redis_url, 1, cache, {
            "GMLREC_REDIS_PREFIX": f"bench-catalog-{a}", "GMLREC_MAX_N": str(MAX_N)}))
            for a in counts}
        puts = {a: put_all(servers[a], items[:a], args.put_concurrency) for a in args.added}
        first = {}
        for a, server in servers.items():
            started = time.perf_counter()
            answer(server, users[0])
            first[a] = 1e3 * (time.perf_counter() - started)
            drive(server, users, 4, len(users))  # every user's state cached
        runs: dict[int, list[LoadResult]] = {a: [] for a in counts}
        for r in range(ROUNDS):
            order = counts[r % len(counts):] + counts[:r % len(counts)]
            for a in order:
                runs[a].append(drive(servers[a], users[r::ROUNDS], 1, args.requests // ROUNDS))
            loads.append(os.getloadavg()[0])
        brute = BruteForce(bundle_path, items)
        rows = []
        for a, server in servers.items():
            latencies = np.concatenate([run.latencies_ms for run in runs[a]])
            top, deep, shown, ranks = zip(*(brute.checked(server, u, a)
                                            for u in users[:CHECKED]))
            rows.append(Served(a, puts.get(a), first[a],
                               LoadResult(1, latencies, 0, sum(x.seconds for x in runs[a])),
                               process_memory(workers_of(server.process.pid)[0]), sum(top),
                               sum(deep), sum(shown), ranks))
    return rows, loads


def serving_report(rows: list[Served], loads: list[float], rounds: list[float],
                   args: argparse.Namespace, flags: set[str], minutes: float) -> str:
    none = next(r for r in rows if r.added == 0).latency.percentile(50)
    simd = [f for f in SIMD if f in flags]
    lines = [
        "## catalog-serving: /recommend with items added through PUT /items", "",
        f"Command: `python -m bench.catalog --part serving --items {args.items} --added "
        f"{' '.join(map(str, args.added))} --requests {args.requests} --put-concurrency "
        f"{args.put_concurrency}` ({minutes:.1f} min). Load average {loads[0]:.1f} at the "
        f"start, {loads[1]:.1f} at the end (1 min), {min(rounds):.1f}–{max(rounds):.1f} over "
        f"the timed rounds, on this machine's {len(os.sched_getaffinity(0))} cores, which "
        "other work may share; CPU flags "
        f"{', '.join(simd) if simd else 'unread (no /proc/cpuinfo flags)'}.", "",
        f"A synthetic GML-FM-dnn bundle of {args.items:,} items (k = 64, one layer, random "
        "weights, as bench.scale_out's), served by three `python -m service` (one worker "
        "each, one Redis, a GMLREC_REDIS_PREFIX each, so an overlay each), up at once: one "
        "with no item added, the others with new items PUT through `PUT /items/{id}` (new "
        "ids, each with a random bundle item's category). GET /recommend/{user}?n=10 at "
        f"concurrency 1 over {USERS} known users (states cached first), {args.requests} "
        f"requests per server in {ROUNDS} rounds, the servers taking turns in a rotating "
        "order.", "",
        "| items added | PUT /items/s at concurrency "
        f"{args.put_concurrency} | PUT p50 ms, first → last tenth of the PUTs | "
        "first /recommend after the PUTs ms | "
        "p50 ms | p99 ms | ÷ none, p50 | worker RSS MB (anon + file) | top 10 equal to "
        "brute force | top n past the first added item equal |",
        "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        put = "— | —" if r.put is None else \
            f"{r.put.per_second:.0f} | {' → '.join(f'{t:.1f}' for t in tenths(r.put))}"
        p50 = r.latency.percentile(50)
        deep = f"{r.deep} of {CHECKED}" if r.added else "—"
        lines.append(f"| {r.added:,} | {put} | {r.first_ms:.0f} | {p50:.1f} | "
                     f"{r.latency.percentile(99):.1f} | {p50 / none:.2f} | {r.memory.rss:.0f} "
                     f"({r.memory.anon:.0f} + {r.memory.file:.0f}) | {r.exact} of {CHECKED} | "
                     f"{deep} |")
    lines += ["", "Brute force: the bundle's numpy reference scorer over its catalog and "
              "AddedItems.score over the added items, the user's training items left out, "
              "ranked by score (ties by union position). An answer is equal when every item's "
              "score is its own and brute force's at its rank (1e-4 of the scale: "
              "onnxruntime's float32 against numpy), and its ids are brute force's wherever "
              "scores do not tie (added items of one category tie, and the overlay lists "
              "them in the order the concurrent PUTs reached the store). Each server was "
              f"checked for {CHECKED} users: their top {N}, and their top n reaching {PAST} "
              "items past the union's first added item (GET /recommend with that n; the "
              f"servers run with GMLREC_MAX_N={MAX_N:,} for it)."]
    for r in rows:
        if r.added:
            ranks = ", ".join(f"{k:,}" for k in r.first_added if k is not None)
            lines.append(f"- {r.added:,} added: {r.added_shown} added items in the "
                         f"{CHECKED * N} top-{N} items checked; the first added item "
                         f"ranked {ranks}.")
    if any(r.added and not r.added_shown for r in rows):
        lines += ["", NOT_IN_TOP]
    slower = [r for r in rows if r.put is not None and tenths(r.put)[1] > 2 * tenths(r.put)[0]]
    if slower:
        lines += ["", PUT_GROWS.format(added=f"{slower[-1].added:,}")]
    lines += ["", target_line(rows)]
    return "\n".join(lines) + "\n"


NOT_IN_TOP = (
    "Why added items rank so low here: with random weights a bundle item's score carries "
    "its own id's bias and vectors on top of its category's, and the top of a catalog is "
    "where those happen to be large; an added item's new id adds nothing, so it scores as "
    "its category alone, and the added items of one category tie. The deep check is "
    "what compares answers holding added items.")


PUT_GROWS = (
    "Why a PUT slows as the overlay grows ({added} added): the worker that took it re-reads "
    "the overlay's change at once, and building the next overlay copies the map of every "
    "added item (service/overlay_feed.py, `_Draft.of`): O(A) a PUT, so adding A items one "
    "PUT at a time costs O(A²) in all.")


def tenths(put: LoadResult) -> tuple[float, float]:
    """PUT p50 over the first and the last tenth of the PUTs, in the order they completed:
    how a PUT's cost moves as the overlay grows."""
    tenth = max(1, put.requests // 10)
    return (float(np.median(put.latencies_ms[:tenth])),
            float(np.median(put.latencies_ms[-tenth:])))


def target_line(rows: list[Served]) -> str:
    """The done-when line: p50 with 1,000 added against none, met or missed by how much."""
    p50 = {r.added: r.latency.percentile(50) for r in rows}
    if 1000 not in p50:
        return "Target (p50 with 1,000 added ≤ 1.2× none): not measured (no --added 1000)."
    ratio = p50[1000] / p50[0]
    verdict = "met" if ratio <= RATIO_TARGET else f"missed by {ratio - RATIO_TARGET:.2f}×"
    return (f"Target: with 1,000 added, p50 {p50[1000]:.1f} ms against {p50[0]:.1f} ms with "
            f"none, {ratio:.2f}× (≤ {RATIO_TARGET}×): {verdict}.")


def run_serving(args: argparse.Namespace) -> str:
    started, loads = time.monotonic(), [os.getloadavg()[0]]
    made = export_synthetic(SPEC.format(items=args.items), "gmlfm", args.out / "models",
                            f"gmlfm-{args.items}")
    path = made.path
    del made
    redis = RedisServer().start()
    try:
        rows, rounds = serve_all(path, redis.url, args)
    finally:
        redis.stop()
    loads.append(os.getloadavg()[0])
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpu_flags(cpuinfo.read_text()) if cpuinfo.exists() else set()
    return serving_report(rows, loads, rounds, args, flags, (time.monotonic() - started) / 60)


# ---- 2. cold start -------------------------------------------------------------------------

def fit_seed(data: str, seed: int, held: list[str], extra: dict, folder: Path
             ) -> tuple[Path, dict, bool]:
    """The default recipe on `data` less `held`, fitted (one torch thread) and exported
    under `folder`; the bundle, the fit's metrics, and whether they are an earlier run's
    (a fit of the same options and held items found there is reused: delete the folder to
    fit again)."""
    out = folder / "cold_start" / f"seed-{seed}"
    options = {**DEFAULT_OPTIONS, "data": data, "seed": seed, **extra}
    made = {"options": options, "held": held}
    done = out / "fitted.json"
    exported = sorted((out / "models" / f"cold-{seed}").glob("*/manifest.json"))
    if done.exists() and json.loads(done.read_text()) == made and exported:
        return exported[-1].parent, json.loads((out / "run" / "metrics.json").read_text()), True
    done.unlink(missing_ok=True)
    bundle = training_api.fit_and_export_without_items(options, out / "run", out / "models",
                                                       f"cold-{seed}", held)
    done.write_text(json.dumps(made))
    return bundle, json.loads((out / "run" / "metrics.json").read_text()), False


@dataclass(frozen=True)
class Seeded:
    """One seed's cold-start measures."""

    seed: int
    held: int  # items held out
    found: Cases
    model: Hits  # ranked by /score, the items added through PUT /items
    popularity: Hits
    random: Hits
    ignored: int  # genre values PUT that the model did not know
    popularity_rho: float  # Spearman ρ, genre popularity against held items' interactions
    top: Genre  # the genre of the largest share of the fit's interactions
    warm_hr: float  # the fit's own test HR@10 (warm items, its protocol)
    fit_s: float  # the fit's training seconds
    reused: bool  # the fit is an earlier run's (fit_seed)
    put_s: float


async def added_and_scored(bundle: Path, data, held: list[str], users: list[str]
                           ) -> tuple[dict[str, np.ndarray], int, float]:
    """Serve `bundle`, PUT the held items with their values, then /score every held item for
    each of `users`; the scores by user, the values PUT that the model ignored, the PUTs'
    seconds."""
    settings = Settings(models_dir=bundle.parents[1], reload_interval_s=0, ranking="inline",
                        ort_cache_dir=None)
    app = create_app(settings)
    code = {item: k for k, item in enumerate(data.item_ids)}
    id_field = load_bundle(bundle, verify=False).manifest[fmt.ITEM_ID_FIELD]
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), \
            httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        ignored, started = 0, time.perf_counter()
        for item in held:
            values = item_values(data, code[item])
            body = {"features": {f: v for f, v in values.items() if f != id_field},
                    "display": {k: str(v[code[item]]) for k, v in data.item_attributes.items()
                                if k in ("title", "year")}}
            r = await client.put(f"/items/{item}", json=body)
            r.raise_for_status()
            ignored += sum(len(v) for v in r.json()["ignored"].values())
        put_s = time.perf_counter() - started
        scores = {}
        for user in users:
            r = await client.post("/score", json={"user_id": user, "item_ids": held})
            r.raise_for_status()
            if r.json()["user_source"] != "training":
                raise RuntimeError(f"user {user}: not a training user of the fit")
            scores[user] = np.array([s["score"] for s in r.json()["scores"]])
    return scores, ignored, put_s


def measure_seed(data, seed: int, bundle: Path, metrics: dict, reused: bool,
                 held: list[str]) -> Seeded:
    """One seed's cases ranked three ways: the served model's /score of the held items added
    through PUT /items, genre popularity over the fit's data, and a random order."""
    pairs = [(str(data.user_ids[u]), str(data.item_ids[i]))
             for u, i in zip(data.users.tolist(), data.items.tolist())]
    found = cases(pairs, held, NEGATIVES, np.random.default_rng([seed, 1]))
    users = list(dict.fromkeys(found.users))
    model, ignored, put_s = asyncio.run(added_and_scored(bundle, data, held, users))
    code = {item: k for k, item in enumerate(data.item_ids)}
    left_out = set(held)
    kept = [k for k, item in enumerate(data.item_ids) if item not in left_out]
    genres = [_genres(data, k) for k in range(len(data.item_ids))]
    counts = np.bincount(data.items, minlength=len(data.item_ids))
    trained = [genres[k] for k in kept], counts[kept].tolist()
    codes = [code[i] for i in held]
    popular = genre_popularity(*trained, [genres[k] for k in codes])
    zero = np.zeros(len(held))
    return Seeded(seed, len(held), found, expected_hits(found, model),
                  expected_hits(found, {u: popular for u in model}),
                  expected_hits(found, {u: zero for u in model}), ignored,
                  rank_correlation(popular, counts[codes]), top_genre(*trained),
                  metrics["test"]["hr@10"], metrics["train_seconds"], reused, put_s)


def _genres(data, code: int) -> list[str]:
    values = item_values(data, code).get("genre", [])
    return [values] if isinstance(values, str) else list(values)


def cold_start_report(rows: list[Seeded], args: argparse.Namespace, loads: list[float],
                      minutes: float) -> str:
    again = sum(r.reused for r in rows)
    reused = f", {again} of {len(rows)} fits an earlier run's, reused" if again else ""
    recipe = ", ".join(f"{k} {v}" for k, v in {**DEFAULT_OPTIONS, **args.options}.items()
                       if k not in ("data", "seed"))
    lines = [
        "## catalog-cold-start: items the fit never saw, added through PUT /items", "",
        f"Command: `python -m bench.catalog --part cold-start --seeds "
        f"{' '.join(map(str, args.seeds))} --data {args.data}` ({minutes:.1f} min{reused}; "
        f"load average {loads[0]:.1f} at the start, {loads[1]:.1f} at the end). Per seed, a "
        f"seeded {SHARE:.0%} of the items is held out with every interaction it has: the "
        "fit's data has neither them, nor their ids, nor any interaction with them "
        f"(bench/lib/held_out.py). The default model's recipe ({recipe}; "
        "training/bootstrap.py) is fitted on the rest and exported, the bundle served "
        "(create_app in process, in-process store), and the held items added through "
        "`PUT /items/{id}` with their genres (title and year as display: the model has no "
        "year field). Each case is one interaction with a held item: the item ranked among "
        f"{NEGATIVES} other held items its user never interacted with (seeded; where fewer "
        "remain, all of them), by the user's `/score`; by genre popularity (an item's score "
        "is the mean over its genres of the genre's share of the fit's interactions); and "
        "at random. Ties are ranked in a random order and counted by their expectation, so "
        "the random ranking's HR@10 is 10 / candidates (bench/lib/cold_start.py).", "",
        "| ranking | HR@10 | NDCG@10 | " + " | ".join(f"seed {r.seed} HR / NDCG" for r in rows)
        + " |", "|---|---|---|" + "---|" * len(rows)]
    for label, pick in (("model, items added by PUT /items", lambda r: r.model),
                        ("genre popularity", lambda r: r.popularity),
                        ("random", lambda r: r.random)):
        hits = [pick(r) for r in rows]
        lines.append(f"| {label} | {mean_std([h.hr for h in hits])} | "
                     f"{mean_std([h.ndcg for h in hits])} | "
                     + " | ".join(f"{h.hr:.4f} / {h.ndcg:.4f}" for h in hits) + " |")
    lines += ["", "| seed | items held out | cases | users | cases with fewer than "
              f"{NEGATIVES} negatives | genre values PUT that the model lacked | fit s | "
              "PUT s | the fit's own test HR@10 (warm items, its protocol) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.seed} | {r.held} | {len(r.found.users):,} | "
                     f"{len(set(r.found.users))} | {r.found.short} | {r.ignored} | "
                     f"{r.fit_s:.0f}{' (an earlier run)' if r.reused else ''} | "
                     f"{r.put_s:.1f} | {r.warm_hr:.4f} |")
    lines += ["", *verdicts(rows)]
    return "\n".join(lines) + "\n"


def verdicts(rows: list[Seeded]) -> list[str]:
    """Added items against random on every seed, and against genre popularity."""
    beat_random = [r.seed for r in rows if r.model.hr > r.random.hr and
                   r.model.ndcg > r.random.ndcg]
    beat_popular = [r.seed for r in rows if r.model.hr > r.popularity.hr and
                    r.model.ndcg > r.popularity.ndcg]
    lines = [f"- Added items against a random ranking (HR@10 and NDCG@10 both higher): "
             f"{len(beat_random)} of {len(rows)} seeds"
             + (": met." if len(beat_random) == len(rows) else ": NOT met.")]
    lines.append(f"- Against genre popularity: higher on {len(beat_popular)} of {len(rows)} "
                 "seeds" + ("." if len(beat_popular) == len(rows) else
                            ". " + WHY_NOT_POPULARITY))
    below = [r for r in rows if r.popularity.hr < r.random.hr]
    if below:
        top = rows[0].top
        lines.append(BELOW_RANDOM.format(
            below=len(below), seeds=len(rows), genre=top.name, share=top.share,
            items=top.items, alone=top.alone, alone_per_item=top.alone_per_item,
            overall=top.overall,
            rho=", ".join(f"{r.popularity_rho:+.2f}" for r in rows)))
    return lines


BELOW_RANDOM = (
    "- Genre popularity ranks below random on {below} of {seeds} seeds: a genre's share of "
    "the interactions grows with how many items it has as much as with how often each is "
    "chosen. The genre of the largest share, {genre} ({share:.0%} of the fit's interactions, "
    "seed 0), is the genre of {items:,} items, and the items the baseline puts first, those "
    "of {genre} alone, are {alone:,} items with {alone_per_item:.1f} interactions each "
    "against {overall:.1f} for the average item. Among the held items the baseline's score "
    "and an item's interaction count go opposite ways (Spearman ρ {rho} by seed).")


WHY_NOT_POPULARITY = (
    "Why not on every seed: an added item is scored from its genres alone (its new id adds "
    "nothing, and GEM's graph has no node for it, docs/math.md, Added items), so the model "
    "and the baseline rank the same few genre sets; every held item of one genre set ties "
    "in both. What is left to the model is each user's taste over those sets, and on "
    "MovieLens-100k a new film's genres say little of who will watch it: how popular its "
    "genres are overall is at least as strong a signal as whose taste they match.")


def run_cold_start(args: argparse.Namespace) -> str:
    started, loads = time.monotonic(), [os.getloadavg()[0]]
    data = training_api.dataset(args.data)
    held = {s: held_out_items(list(data.item_ids), SHARE, s) for s in args.seeds}
    with training_api.fit_workers(min(args.jobs, len(args.seeds))) as pool:
        fitted = {s: pool.submit(fit_seed, args.data, s, held[s], args.options, args.out)
                  for s in args.seeds}
        bundles = {s: f.result() for s, f in fitted.items()}
    rows = [measure_seed(data, s, *bundles[s], held[s]) for s in args.seeds]
    loads.append(os.getloadavg()[0])
    return cold_start_report(rows, args, loads, (time.monotonic() - started) / 60)


# ---- the command ---------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.catalog",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", nargs="+", choices=("serving", "cold-start"),
                        default=["serving", "cold-start"])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--added", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--put-concurrency", type=int, default=8)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="cold-start fits at once")
    parser.add_argument("--data", default="movielens-100k",
                        help="the cold-start data (MovieLens: item fields id and genre)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, one seed, one epoch: checks the bench runs")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    args.options, args.out = {}, OUT
    with tempfile.TemporaryDirectory(prefix="gmlrec-bench-catalog-") as smoke:
        if args.smoke:  # its bundles and runs go in a temporary folder, removed after
            vars(args).update(SMOKE, out=Path(smoke))
        run(args)


def run(args: argparse.Namespace) -> None:
    if "serving" in args.part:
        text = run_serving(args)
        write_section("catalog-serving", text, args.results)
        print(text, flush=True)
    if "cold-start" in args.part:
        text = run_cold_start(args)
        write_section("catalog-cold-start", text, args.results)
        print(text, flush=True)


if __name__ == "__main__":
    main()
