"""explain=true: what the reasons cost a /recommend and a /score, against the same call without.

    python -m bench.explain [--items 10000] [--history 10] [--rounds 40]

For GML-FM-dnn with a history field of `--history` items and for FM (k = 64, random weights:
training adds nothing to a timing) on a synthetic catalog, the app (create_app, in-process
store, ranking inline) answers in this process through httpx's ASGI transport, one request at
a time, for a known user: GET /recommend/{id}?n=10 and POST /score of 10 items, each with and
without explain=true, interleaved. Each explained answer is checked first: the same items and
scores as without, and every item's terms add up to its score within 1e-5 relative (to the
largest term where the terms cancel to near 0, as float32 rounding is relative to them). Median
(best) ms, and the ratio to the call without.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np

from bench.catalog import SIMD
from bench.lib.results import RESULTS, write_section
from bench.lib.synthetic_bundle import export_synthetic
from bench.lib.timing import Timing
from bench.two_phase import cpu_flags
from service.app import create_app
from service.settings import Settings

USER = "0"
N = 10


def spec(items: int) -> str:
    return (f"synthetic:users=200,items={items},interactions={4 * items},categories=5,"
            "segments=3,seed=0")


async def measure(models_dir: Path, rounds: int) -> dict[str, Timing]:
    settings = Settings(models_dir=models_dir, reload_interval_s=0, ranking="inline",
                        ort_cache_dir=None)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            ids = [str(i) for i in app.state.model_host.current.catalog.ids[:N].tolist()]

            async def recommend(explain: bool) -> list[dict]:
                r = await client.get(f"/recommend/{USER}",
                                     params={"n": N, "explain": str(explain).lower()})
                r.raise_for_status()
                return r.json()["items"]

            async def score(explain: bool) -> list[dict]:
                r = await client.post("/score", json={"user_id": USER, "item_ids": ids,
                                                      "explain": explain})
                r.raise_for_status()
                return r.json()["scores"]

            for call in (recommend, score):
                plain, explained = await call(False), await call(True)
                check(plain, explained)
            cases = {"GET /recommend": recommend, "POST /score": score}
            times: dict[str, list[float]] = {f"{c} {e}": [] for c in cases
                                             for e in ("without", "explain=true")}
            for _ in range(rounds):
                for name, call in cases.items():
                    for explain, label in ((False, "without"), (True, "explain=true")):
                        start = time.perf_counter()
                        await call(explain)
                        times[f"{name} {label}"].append(1e3 * (time.perf_counter() - start))
    return {name: Timing(float(np.median(t)), min(t)) for name, t in times.items()}


def check(plain: list[dict], explained: list[dict]) -> None:
    """The explained answer is the plain one with terms that add up to each score."""
    if [(i["item_id"], i["score"]) for i in plain] != \
            [(i["item_id"], i["score"]) for i in explained]:
        raise RuntimeError("explain=true changed the answer")
    for item in explained:
        e = item["explanation"]
        total = e["score"]
        # float32 rounding is relative to the terms: where they cancel to near 0, the largest
        largest = max([abs(item["score"]), abs(e["item"]["value"]), abs(e["user"]["value"])]
                      + [abs(t["value"]) for g in e["fields"] for t in g["terms"]])
        if abs(total - item["score"]) > 1e-5 * max(largest, 1e-6):
            raise RuntimeError(f"terms {total} do not add up to score {item['score']}")


def report(command: str, items: int, history: int, rows: dict[str, dict[str, Timing]],
           rounds: int, load: tuple[float, float], flags: set[str]) -> str:
    simd = [f for f in SIMD if f in flags]
    lines = ["## explain: what explain=true costs", "",
             f"Command: `{command}`. {items:,} items, random weights, k = 64, one request at a "
             "time in process (create_app through httpx's ASGI transport; in-process store; "
             f"ranking inline), a known user, n = {N} (and {N} items scored); ms, median "
             f"(best) over {rounds} interleaved rounds. GML-FM-dnn has a history field of "
             f"{history} items, so its user row has {history} more columns to explain. Every "
             "explained answer was checked first: the same items and scores as without, each "
             "item's terms adding up to its score within 1e-5 relative (to its largest term "
             "where they cancel to near 0). CPU flags "
             f"{', '.join(simd) if simd else 'unread (no /proc/cpuinfo flags)'}.", "",
             "| model | call | without, ms | explain=true, ms | ÷ without (p50) |",
             "|---|---|---|---|---|"]
    for model, times in rows.items():
        for call in ("GET /recommend", "POST /score"):
            off, on = times[f"{call} without"], times[f"{call} explain=true"]
            lines.append(f"| {model} | {call} | {off} | {on} | {on.median / off.median:.2f} |")
    lines += ["", f"Load average {load[0]:.1f} at the start, {load[1]:.1f} at the end."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.explain",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--history", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="gmlrec-bench-explain-") as folder:
        for model, label, history in (("gmlfm", "GML-FM-dnn", args.history), ("fm", "FM", 0)):
            models = Path(folder) / model
            export_synthetic(spec(args.items), model, models, "synthetic", history=history)
            rows[label] = asyncio.run(measure(models, args.rounds))
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpu_flags(cpuinfo.read_text()) if cpuinfo.exists() else set()
    command = "python -m bench.explain " + " ".join(sys.argv[1:] if argv is None else argv)
    body = report(command.strip(), args.items, args.history, rows, args.rounds,
                  (load, os.getloadavg()[0]), flags)
    write_section("explain", body, args.results)
    print(body)


if __name__ == "__main__":
    main()
