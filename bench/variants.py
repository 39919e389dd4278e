"""What an experiment costs a worker: memory per added variant, and a shadow's cost on p50.

    python -m bench.variants [--items 100000] [--variants 1 2 4] [--requests 300] [--turns 2]

1. Export a synthetic GML-FM-dnn bundle (k = 64, one layer, random weights) of --items items
   (bench/lib/synthetic_bundle.py, the recipe of bench.scale_out's throughput part).
2. Memory: serve it with `python -m service` (one worker, in-process store) with 1, 2 and 4
   serving variants, each variant's model in a folder of its own (so each loads its own copy,
   as distinct bundles would; variants naming one model share it and add nothing), and read
   the worker's memory from /proc after a warm-up that made every variant rank: VmRSS,
   RssAnon (heap), Private (pages no other process maps). The cost of an added variant is the
   slope from 1 to the most variants.
3. Shadow: GET /recommend/{user} (n = 10), closed loop at concurrency 1, --requests a turn,
   served with one variant alone and with that variant plus a shadow of the same bundle (the
   same work again, beside the request), the two servers taking --turns turns each; p50 and
   p99 of each, and the ratio within the run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.lib.results import RESULTS, write_section
from bench.lib.synthetic_bundle import export_synthetic, size_mb
from bench.scale_out import Memory, drive, process_memory, serving
from tests.support.processes import workers_of

OUT = Path("runs/bench/variants")
SPEC = "synthetic:users=1000,items={items},interactions=20000,seed=0"
USERS = [str(u) for u in range(200)]


def variant_folders(bundle: Path, root: Path, count: int) -> list[Path]:
    """`count` models folders, each holding the bundle (a link) under its own model name."""
    folders = []
    for k in range(count):
        folder = root / f"variant-{k}"
        (folder / bundle.parent.name).mkdir(parents=True, exist_ok=True)
        link = folder / bundle.parent.name / bundle.name
        if not link.exists():
            link.symlink_to(bundle.resolve())
        folders.append(folder)
    return folders


def variants_json(folders: list[Path], shadows: list[Path] | None = None) -> str:
    share = 1 / len(folders)
    serving_ = [{"name": f"v{k}", "models_dir": str(f), "share": share}
                for k, f in enumerate(folders)]
    serving_[-1]["share"] = 1 - share * (len(folders) - 1)
    shadow = [{"name": f"s{k}", "models_dir": str(f), "shadow": True}
              for k, f in enumerate(shadows or [])]
    return json.dumps(serving_ + shadow)


def answering(port: int) -> None:
    """Until the server accepts connections: one worker logs ready before it listens."""
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def memory_with(bundle: Path, root: Path, count: int) -> Memory:
    folders = variant_folders(bundle, root, count)
    with serving(bundle, "", 1, "", {"GMLREC_VARIANTS": variants_json(folders)}) as server:
        answering(server.port)
        drive(server, USERS, 4, 200)  # every variant ranks some users
        (worker,) = workers_of(server.process.pid)
        return process_memory(worker)


def latency_turns(bundle: Path, root: Path, requests: int, turns: int
                  ) -> dict[str, list[tuple[float, float]]]:
    (plain,) = variant_folders(bundle, root, 1)
    shadow_folder = variant_folders(bundle, root, 2)[1]
    configs = {"one variant": variants_json([plain]),
               "one variant + a shadow": variants_json([plain], [shadow_folder])}
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in configs}
    for _ in range(turns):
        for name, variants in configs.items():
            with serving(bundle, "", 1, "", {"GMLREC_VARIANTS": variants}) as server:
                answering(server.port)
                drive(server, USERS, 1, 50)  # warm: states cached, sessions run
                result = drive(server, USERS, 1, requests)
                found[name].append((result.percentile(50), result.percentile(99)))
                if "shadow" in name:
                    shadowed = shadow_count(server.port)
                    if shadowed < requests:
                        raise RuntimeError(f"the shadow ranked {shadowed} of {requests}")
    return found


def shadow_count(port: int) -> int:
    """Rankings the shadow has done, from /admin/experiment (after the pending ones end)."""
    time.sleep(0.5)
    report = httpx.get(f"http://127.0.0.1:{port}/admin/experiment").json()
    return sum(v["shadow_answers"] for v in report["variants"])


def report(args: argparse.Namespace, bundle_mb: float, export_s: float,
           memory: dict[int, Memory], latency: dict[str, list[tuple[float, float]]],
           loads: list[float]) -> str:
    first, last = min(memory), max(memory)
    slope = {k: (getattr(memory[last], k) - getattr(memory[first], k)) / (last - first)
             for k in ("rss", "anon", "private")}
    lines = ["## Variants: memory per added variant, a shadow's cost on p50",
             "",
             f"`python -m bench.variants --items {args.items} --variants "
             f"{' '.join(map(str, args.variants))} --requests {args.requests} --turns "
             f"{args.turns}`: a synthetic GML-FM-dnn bundle (k = 64, one layer, random weights) "
             f"of {args.items:,} items, {bundle_mb:.0f} MB on disk (exported in {export_s:.1f} s), "
             "served by `python -m service`, one worker, in-process store, each variant's model "
             "in a folder of its own (so each loads its own copy, as distinct bundles do).",
             "",
             "| serving variants | VmRSS MB | RssAnon MB | Private MB |",
             "|---|---|---|---|"]
    for count, mem in sorted(memory.items()):
        lines.append(f"| {count} | {mem.rss:.0f} | {mem.anon:.0f} | {mem.private:.0f} |")
    lines += ["",
              f"Each added variant costs about {slope['rss']:.0f} MB of RSS "
              f"({slope['anon']:.0f} MB of heap, {slope['private']:.0f} MB private) on this "
              f"bundle, {slope['rss'] / bundle_mb:.1f}× its size on disk; variants naming the "
              "same model share one loaded copy and add nothing.",
              "",
              f"GET /recommend/{{user}}, n = 10, concurrency 1, {args.requests} requests a turn, "
              f"{args.turns} turns each, the servers taking turns (p50 / p99 ms of each turn), "
              f"on a shared machine at load average {min(loads):.0f}–{max(loads):.0f} (1 min, "
              "read at the start and the end): the absolute times are that load's, the ratio "
              "within the run is the finding:",
              "",
              "| served by | p50 ms | p99 ms | turns (p50 / p99) |",
              "|---|---|---|---|"]
    p50 = {}
    for name, turns in latency.items():
        p50[name] = statistics.median(t[0] for t in turns)
        p99 = statistics.median(t[1] for t in turns)
        each = ", ".join(f"{a:.2f} / {b:.2f}" for a, b in turns)
        lines.append(f"| {name} | {p50[name]:.2f} | {p99:.2f} | {each} |")
    plain, shadowed = p50["one variant"], p50["one variant + a shadow"]
    lines += ["",
              f"A shadow variant raised p50 from {plain:.2f} to {shadowed:.2f} ms "
              f"({shadowed / plain:.2f}×) at concurrency 1 with requests back to back: the "
              "shadow ranks after the answer is built, off the request's own path, but in the "
              "same worker, so the next request waits for the CPU it takes. With time between "
              "a user's requests the shadow's ranking falls in that gap instead."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.variants",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--variants", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="gmlrec-bench-variants-") as tmp:
        root = Path(tmp)
        made = export_synthetic(SPEC.format(items=args.items), "gmlfm", root / "models",
                                "variants")
        memory = {count: memory_with(made.path, root, count) for count in args.variants}
        latency = latency_turns(made.path, root, args.requests, args.turns)
        loads.append(os.getloadavg()[0])
        text = report(args, size_mb(made.path), made.export_s, memory, latency, loads)
    write_section("variants", text, args.results)
    print(text, flush=True)


if __name__ == "__main__":
    main()
