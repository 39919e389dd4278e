"""The block search (exact top n from block bounds) beside the float32 and two-phase paths.

    python -m bench.prune [--requests 120] [--quick]

Four catalogs, each served by three `python -m service` (one worker, one Redis) up at once,
taking turns over GET /recommend/{user}?n=10 at concurrency 1 (ten turns, who goes first
rotating, so that drift on a shared machine falls on every path alike):
    float32    GMLREC_PRUNE=off, GMLREC_TWO_PHASE_ITEMS above the catalog (model.onnx alone)
    two-phase  GMLREC_PRUNE=off, GMLREC_TWO_PHASE_ITEMS=0
    auto       GMLREC_PRUNE=auto (the default: the picker measures at load, per shape)
(a) bench.two_phase's random-weight GML-FM-dnn bundle (k = 64) at 1,000,000 items, whose
initial weights leave the pair terms too small to move a ranking (the items' own terms order
every list); (a2) the same with every weight redrawn N(0, 0.1²), where they do; (b)
GML-FM-dnn (k = 8) fitted two epochs on a synthetic log of 1,000,000 interactions over
1,000,000 items whose popularity follows the power law measured on MovieLens-100k; (c)
MovieLens-100k's default model (training/bootstrap.py's options, three epochs). In process,
per catalog: how far the user moves the scores (the std of the user-dependent part against
that of the items' own), the share of items and blocks the block search reads per query (it
never gives up here, to show what it needs), whether its answers equal model.onnx's to the
bit, and the bytes read; for (b), the items other partitions would need read. Also: the CPU
flags and a measured read-once bandwidth. --quick, the smoke test: 5,000 items for (a), (a2)
and (b), and MovieLens-100k's plain GML-FM-dnn at k = 8, one epoch, for (c).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.lib.http_load import LoadResult
from bench.lib.results import write_section
from bench.lib.synthetic_bundle import export_synthetic
from bench.lib.training_api import fit
from bench.scale_out import Memory, Server, drive, process_memory, serving, workers_of
from bench.two_phase import FLOAT32_TABLES, cpu_flags, table_bytes
from bundle import OnnxScorer, blocks, load_bundle
from bundle import format as fmt
from bundle.layout import StateLayout
from tests.support.local_redis import RedisServer

OUT = Path("runs/bench/prune")
PATHS = {"float32": {"GMLREC_TWO_PHASE_ITEMS": str(10 ** 12), "GMLREC_PRUNE": "off"},
         "two-phase": {"GMLREC_TWO_PHASE_ITEMS": "0", "GMLREC_PRUNE": "off"},
         "auto": {"GMLREC_PRUNE": "auto"}}
TURNS, IN_PROCESS_USERS, WARM = 10, 20, 10
REDRAWN = 0.1  # (a2)'s weights: pair terms that move the ranking, which bench.two_phase's
# initial weights hardly do (there the items' own terms alone order every user's list)
MOVIELENS_EPOCHS = 3
DEFAULT_DIM = 64  # the default model's k; --quick fits MovieLens-100k's GML-FM-dnn at k = 8 instead


@dataclass(frozen=True)
class Catalog:
    key: str
    label: str
    items: int
    spec: str  # a data spec, or "random" for bench.two_phase's random-weight bundle
    dim: int
    epochs: int
    weight_std: float | None = None  # random weights redrawn N(0, std²) (export_synthetic)


def catalogs(quick: bool, exponent: float) -> list[Catalog]:
    items = 5_000 if quick else 1_000_000
    log = (f"synthetic:users={500 if quick else 50_000},items={items},"
           f"interactions={10_000 if quick else 1_000_000},skew={exponent:.2f},seed=0")
    random = f"synthetic:users=1000,items={items},interactions=20000,seed=0"
    return [Catalog("a", "random weights", items, random, 64, 0),
            Catalog("a2", f"random weights, redrawn N(0, {REDRAWN}²)", items, random, 64, 0,
                    REDRAWN),
            Catalog("b", "fitted, power-law log", items, log, 8, 1 if quick else 2),
            Catalog("c", "MovieLens-100k default", 1682, "movielens-100k",
                    8 if quick else DEFAULT_DIM, 1 if quick else MOVIELENS_EPOCHS)]


def popularity_exponent() -> tuple[float, int]:
    """The exponent s of MovieLens-100k's rank-frequency law (count ∝ rank^-s), by least
    squares on log count against log rank over every rated item; and the item count."""
    from training.data.specs import load_data

    counts = np.bincount(load_data("movielens-100k").items)
    ranked = np.sort(counts[counts > 0])[::-1].astype(np.float64)
    slope = np.polyfit(np.log(np.arange(1, len(ranked) + 1)), np.log(ranked), 1)[0]
    return float(-slope), len(ranked)


def bundle_for(catalog: Catalog, out: Path) -> Path:
    """The catalog's bundle: exported at random weights, or fitted and exported (a fit is
    reused from an earlier run of the same options)."""
    from training.bootstrap import DEFAULT_OPTIONS
    from training.export import export_run

    name = f"{catalog.key}-{catalog.items}"
    if catalog.spec.startswith("synthetic") and catalog.epochs == 0:
        return export_synthetic(catalog.spec, "gmlfm", out / "models", name,
                                dim=catalog.dim, weight_std=catalog.weight_std).path
    if catalog.spec == "movielens-100k" and catalog.dim == DEFAULT_DIM:
        options = {**DEFAULT_OPTIONS, "epochs": catalog.epochs}
    else:
        options = {"data": catalog.spec, "task": "topn", "model": "gmlfm", "distance": "dnn",
                   "layers": 1, "dim": catalog.dim, "epochs": catalog.epochs,
                   "batch_size": 32768, "lr": 0.03, "seed": 0}
    run = out / "fits" / name
    recorded = run / "options.json"
    if not recorded.exists() or json.loads(recorded.read_text()) != options:
        fit(options, run)
        recorded.write_text(json.dumps(options))
    return export_run(run, out / "models", name)


def bandwidth_gbs() -> float:
    """Read-once bandwidth: the best of 5 numpy sums over a 512 MiB float32 array."""
    array = np.ones(128 << 20, np.float32)
    best = np.inf
    for _ in range(5):
        started = time.perf_counter()
        array.sum()
        best = min(best, time.perf_counter() - started)
    return array.nbytes / best / 1e9


def in_process(path: Path) -> dict:
    """Per query (n = 10, known users, their seen items excluded): shares of items and blocks
    the block search reads, rounds, exactness against model.onnx, bytes read."""
    bundle = load_bundle(path, verify=False)
    scorer = OnnxScorer(bundle, threads=1, two_phase_from=None, prune="on")
    ranker = scorer.blocks
    assert ranker is not None
    ranker.max_share = 1.0
    items, blocks, rounds, exact = [], [], [], True
    for user in np.linspace(0, len(bundle.users) - 1, IN_PROCESS_USERS).astype(int):
        state = scorer.user_state(*(a[None] for a in bundle.users.row(int(user))))
        seen = [bundle.users.seen_items(int(user))]
        got, want = ranker.top_n(state, 10, seen), scorer.float32_top_n(state, 10, seen)
        exact &= got is not None and all(np.array_equal(g, w) for g, w in zip(got, want))
        items.append(ranker.last.items / len(bundle.catalog))
        blocks.append(ranker.last.blocks / ranker.n_blocks)
        rounds.append(ranker.last.rounds)
    slabs = sum(a.nbytes for name, a in bundle.arrays.items()
                if name.startswith(("blocks/slab_", "blocks/shared_")))
    summaries = sum(a.nbytes for name, a in bundle.arrays.items()
                    if name.startswith("blocks/") and not name.startswith(
                        ("blocks/slab_", "blocks/shared_", "blocks/order", "blocks/offsets")))
    own = np.asarray(bundle.arrays[fmt.ITEM_CONST], np.float64)
    everything = np.arange(len(bundle.catalog))[None]
    spread = [np.std(scorer.score(scorer.user_state(*(a[None] for a in bundle.users.row(u))),
                                  everything)[0] - own) / max(float(np.std(own)), 1e-30)
              for u in (0, len(bundle.users) // 2)]
    return {"items": float(np.median(items)), "items_p90": float(np.percentile(items, 90)),
            "spread": float(np.median(spread)),
            "blocks": float(np.median(blocks)), "n_blocks": ranker.n_blocks,
            "rounds": float(np.median(rounds)), "exact": exact,
            "mb_float32": table_bytes(bundle, FLOAT32_TABLES) / 2**20,
            "mb_pruned": (float(np.median(items)) * slabs + summaries) / 2**20,
            "mb_blocks": (slabs + summaries) / 2**20}


def partitions(path: Path) -> dict[str, tuple[float, float]]:
    """Per way of cutting the catalog into blocks, the share of items a top 10 must read
    under it (those in blocks whose bound reaches the 10th best score), median and p90 over
    the same users as `in_process`: the export's principal-direction splits at three block
    sizes, and blocks of consecutive items ordered by the norm of their vectors (as LEMP
    buckets by norm) or by their own score part (const)."""
    bundle = load_bundle(path, verify=False)
    scorer = OnnxScorer(bundle, threads=1, two_phase_from=None, prune="off")
    names = ("matrix",) if bundle.scoring["family"] == "linear" else (
        "feature_t", "feature_v", "feature_s")
    tables = {name: np.asarray(bundle.arrays[fmt.item_table_file(name)]) for name in names
              if fmt.item_table_file(name) in bundle.arrays}
    idx, val, const = (np.asarray(bundle.arrays[f]) for f in (fmt.ITEM_IDX, fmt.ITEM_VAL,
                                                               fmt.ITEM_CONST))
    vectors = blocks.item_vectors(bundle.scoring, tables, idx, val, const)
    n, size = len(const), blocks.block_items(len(const))
    part = StateLayout.of(bundle.scoring).span("part")[0]
    users = np.linspace(0, len(bundle.users) - 1, IN_PROCESS_USERS).astype(int)
    states = [scorer.user_state(*(a[None] for a in bundle.users.row(int(u)))) for u in users]
    floors = [scorer.float32_top_n(state, 10, [bundle.users.seen_items(int(u))])[1][0, -1]
              - state[0, part] for state, u in zip(states, users)]

    def consecutive(order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return order, np.append(np.arange(0, n, size), n)

    cuts = {f"principal directions, {s:,} items a block": blocks.partition(vectors, s)
            for s in sorted({max(8, size // 2), size, size * 2})}
    cuts[f"by vector norm, {size:,} a block"] = consecutive(
        np.argsort(-np.linalg.norm(vectors, axis=1), kind="stable"))
    cuts[f"by the item's own part (const), {size:,} a block"] = consecutive(
        np.argsort(-const, kind="stable"))
    out = {}
    for label, (order, offsets) in cuts.items():
        summary = blocks.summaries(bundle.scoring, tables, idx, val, const, order, offsets)
        sizes = np.diff(offsets)
        shares = [sizes[blocks.bounds(bundle.scoring, summary, state[0]) >= floor].sum() / n
                  for state, floor in zip(states, floors)]
        out[label] = (float(np.median(shares)), float(np.percentile(shares, 90)))
    return out


def chosen_paths(server: Server) -> dict[str, str]:
    """gmlrec_ranking_path's shapes set to 1, from the server's /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("gmlrec_ranking_path{") and line.rstrip().endswith(" 1.0"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            out[labels["shape"]] = labels["path"]
    return out


def over_http(path: Path, redis_url: str, requests: int) -> dict:
    users = [str(u) for u in load_bundle(path, verify=False).users.ids]
    runs: dict[str, list[LoadResult]] = {name: [] for name in PATHS}
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory() as cache:
        servers = {name: stack.enter_context(serving(path, redis_url, 1, cache, env))
                   for name, env in PATHS.items()}
        for server in servers.values():  # states cached, pages touched, sessions warm
            drive(server, users, 1, WARM)
        names = list(servers)
        for turn in range(TURNS):  # each path in turn, who goes first rotating
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                runs[name].append(drive(servers[name], users[turn::TURNS], 1,
                                        max(1, requests // TURNS)))
        picked = chosen_paths(servers["auto"])
        memory = {name: process_memory(workers_of(s.process.pid)[0])
                  for name, s in servers.items()}
    latency = {name: np.concatenate([r.latencies_ms for r in rs]) for name, rs in runs.items()}
    return {"p50": {k: float(np.percentile(v, 50)) for k, v in latency.items()},
            "p99": {k: float(np.percentile(v, 99)) for k, v in latency.items()},
            "memory": memory, "picked": picked}


def report(rows: list[tuple[Catalog, dict, dict]], exponent: tuple[float, int],
           loads: list[float], bandwidth: float, flags: set[str], args,
           cuts: dict[str, tuple[float, float]]) -> str:
    simd = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "sse4")))
    lines = ["## prune: exact top n from block bounds, beside float32 and two-phase", "",
             f"Command: `python -m bench.prune --requests {args.requests}"
             f"{' --quick' if args.quick else ''}`. Load average {loads[0]:.1f} at the start, "
             f"{loads[1]:.1f} at the end (1 min) on {len(os.sched_getaffinity(0))} cores shared "
             f"with other work. One worker per path, all three up at once, taking {TURNS} turns "
             "(who goes first rotating); "
             "GET /recommend/{user}?n=10, concurrency 1, the user's seen items excluded.", "",
             f"CPU flags (SIMD): {' '.join(simd) or 'unknown'}. Read-once bandwidth, measured "
             f"(best numpy sum over 512 MiB): {bandwidth:.1f} GB/s.", "",
             f"Catalog (b)'s log: item popularity ∝ rank^-{exponent[0]:.2f}, the exponent of "
             f"MovieLens-100k's ratings ({exponent[1]:,} rated items), fitted by least squares on "
             "log count against log rank; bench/lib's synthetic generator draws items with "
             "that skew.", "",
             "| catalog | items | path | p50 ms | p99 ms | p50 / float32 | worker RSS MB |",
             "|---|---|---|---|---|---|---|"]
    for catalog, _, http in rows:
        for name in PATHS:
            mem: Memory = http["memory"][name]
            lines.append(f"| ({catalog.key}) {catalog.label} | {catalog.items:,} | {name} | "
                         f"{http['p50'][name]:.1f} | {http['p99'][name]:.1f} | "
                         f"{http['p50'][name] / http['p50']['float32']:.2f} | {mem.rss:.0f} |")
    lines += ["", "| catalog | user part / items' own part (std) | blocks | items read per "
              "query (median, p90) | blocks read | rounds | MB read: float32, block search | "
              "blocks' files MB | block answers = model.onnx's | auto picked (n<=10, n<=100) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for catalog, local, http in rows:
        picked = http["picked"]
        lines.append(
            f"| ({catalog.key}) | {local['spread']:.2g} | {local['n_blocks']:,} | "
            f"{100 * local['items']:.2f}%, "
            f"{100 * local['items_p90']:.2f}% | {100 * local['blocks']:.2f}% | "
            f"{local['rounds']:.0f} | {local['mb_float32']:.0f}, {local['mb_pruned']:.1f} | "
            f"{local['mb_blocks']:.0f} | "
            f"{'all' if local['exact'] else 'NOT ALL'} | {picked.get('n<=10', '?')}, "
            f"{picked.get('n<=100', '?')} |")
    if cuts:
        lines += ["", "Catalog (b), other ways to cut it (in process, the same users): the items "
                  "a top 10 must read, those in blocks whose bound reaches its 10th score.", "",
                  "| partition | items to read (median, p90) |", "|---|---|"]
        lines += [f"| {label} | {100 * med:.2f}%, {100 * p90:.2f}% |"
                  for label, (med, p90) in cuts.items()]
    same = [c.key for c, _, http in rows if http["picked"].get("n<=10") == "float32"]
    if same:
        lines += ["", f"Where auto kept the full pass ({', '.join(same)}), its row and "
                  "float32's run the same path: their ratio is this run's noise."]
    if args.quick:
        lines += ["", "Smoke-test scale (--quick): the targets are for catalogs of 1,000,000 "
                  "items and are not judged here; at this size a full pass costs about what a "
                  "request's own work does, and the picker's choice above is what it measured."]
        return "\n".join(lines) + "\n"
    lines += ["", "Targets (auto p50 / float32 p50, same run):"]
    for catalog, _, http in rows:
        ratio = http["p50"]["auto"] / http["p50"]["float32"]
        goal = {"a": 1.05, "a2": 1.05, "b": 0.5}.get(catalog.key)
        verdict = "" if goal is None else (f": target ≤ {goal}, " +
                                           ("met" if ratio <= goal else "missed"))
        lines.append(f"- ({catalog.key}) {catalog.label}: {ratio:.2f}×{verdict}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.prune",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--quick", action="store_true", help="small catalogs (smoke test)")
    parser.add_argument("--out", type=Path, default=OUT, help="where fits and bundles go")
    parser.add_argument("--results", type=Path, default=None,
                        help="write the section into this file instead of bench/RESULTS.md")
    args = parser.parse_args(argv)
    loads = [os.getloadavg()[0]]
    exponent = popularity_exponent()
    bandwidth = bandwidth_gbs()
    redis = RedisServer().start()
    rows: list[tuple[Catalog, dict, dict]] = []
    cuts: dict[str, tuple[float, float]] = {}
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpu_flags(cpuinfo.read_text()) if cpuinfo.exists() else set()
    try:
        # (b) first: the catalog the target is about; the section is written after each
        # catalog, so a run cut short still records what it measured
        for catalog in sorted(catalogs(args.quick, exponent[0]), key=lambda c: c.key != "b"):
            path = bundle_for(catalog, args.out)
            rows.append((catalog, in_process(path), over_http(path, redis.url, args.requests)))
            if catalog.key == "b":
                cuts = partitions(path)
            text = report(sorted(rows, key=lambda r: r[0].key), exponent,
                          [loads[0], os.getloadavg()[0]], bandwidth, flags, args, cuts)
            if args.results is not None:
                write_section("prune", text, args.results)
            elif not args.quick:
                write_section("prune", text)
    finally:
        redis.stop()
    print(text)


if __name__ == "__main__":
    main()
