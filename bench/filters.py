"""Filters: what POST /recommend costs with a business filter, against none, at 100,000 items.

    python -m bench.filters [--items 100000] [--rounds 40]

For GML-FM-dnn and FM (k = 64, random weights: training adds nothing to a timing) on a
synthetic catalog, the app (create_app, in-process store, ranking inline) answers POST
/recommend in this process through httpx's ASGI transport, one request at a time, for a
known user with n = 10: no filter; `item_ids` keeping 1% of the catalog (scored directly,
service/filters.py); `include` of one category (about a fifth of the catalog: ranked over
the whole catalog with the rest excluded); and `exclude` of one category. Each filtered
answer is checked first against the unfiltered scores of the items that pass. Median (best)
ms over interleaved rounds, and the ratio to no filter.
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

from bench.lib.results import RESULTS, write_section
from bench.lib.synthetic_bundle import export_synthetic
from bench.lib.timing import Timing
from service.app import create_app
from service.settings import Settings

CATEGORIES = 5
USER = "0"
N = 10


def spec(items: int) -> str:
    return (f"synthetic:users=200,items={items},interactions={4 * items},"
            f"categories={CATEGORIES},segments=3,seed=0")


async def measure(models_dir: Path, items: int, rounds: int) -> dict[str, Timing]:
    settings = Settings(models_dir=models_dir, reload_interval_s=0, ranking="inline",
                        ort_cache_dir=None)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            model = app.state.model_host.current
            ids = [str(i) for i in model.catalog.ids.tolist()]
            category = model.bundle.catalog.details(0)["features"]["category"]
            cases = {"none": None,
                     "item_ids: 1% of the catalog": {"item_ids": ids[::100]},
                     f"include category {category}": {"include": {"category": [category]}},
                     f"exclude category {category}": {"exclude": {"category": [category]}}}

            async def ask(spec: dict | None) -> list[dict]:
                body = {"user_id": USER, "n": N, "exclude_seen": False,
                        **({"filter": spec} if spec else {})}
                r = await client.post("/recommend", json=body)
                r.raise_for_status()
                return r.json()["items"]

            whole = await ask(None)
            allowed = set(ids[::100])
            scores = await client.post("/score", json={"user_id": USER,
                                                       "item_ids": sorted(allowed)[:1000]})
            best = max(s["score"] for s in scores.json()["scores"])
            got = await ask(cases["item_ids: 1% of the catalog"])
            if not got or abs(got[0]["score"] - best) > 1e-4 * max(1.0, abs(best)):
                raise RuntimeError("the filtered answer is not the best of the items passing")
            if whole[0]["item_id"] in allowed and got[0]["item_id"] != whole[0]["item_id"]:
                raise RuntimeError("the filtered answer disagrees with the unfiltered one")
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(rounds):
                for name, case in cases.items():
                    start = time.perf_counter()
                    await ask(case)
                    times[name].append(1e3 * (time.perf_counter() - start))
    return {name: Timing(float(np.median(t)), min(t)) for name, t in times.items()}


def report(command: str, items: int, rows: dict[str, dict[str, Timing]], rounds: int,
           load: tuple[float, float]) -> str:
    lines = ["## filters: POST /recommend with a business filter", "",
             f"Command: `{command}`. {items:,} items, random weights, k = 64, one request at a "
             "time in process (create_app through httpx's ASGI transport; in-process store; "
             f"ranking inline), a known user, n = {N}; ms, median (best) over {rounds} "
             "interleaved rounds. A filter passing at most 5% of the catalog scores only "
             "those items; a wider one ranks the whole catalog with the rest excluded. Every "
             "filtered answer was checked against the scores of the items that pass.", "",
             "| model | filter | ms | ÷ no filter |", "|---|---|---|---|"]
    for model, times in rows.items():
        none = times["none"].median
        for name, t in times.items():
            lines.append(f"| {model} | {name} | {t} | {t.median / none:.2f} |")
    lines += ["", f"Load average {load[0]:.1f} at the start, {load[1]:.1f} at the end."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.filters",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    rows = {}
    with tempfile.TemporaryDirectory(prefix="gmlrec-bench-filters-") as folder:
        for model, label in (("gmlfm", "GML-FM-dnn"), ("fm", "FM")):
            models = Path(folder) / model
            export_synthetic(spec(args.items), model, models, "synthetic")
            rows[label] = asyncio.run(measure(models, args.items, args.rounds))
    command = "python -m bench.filters " + " ".join(sys.argv[1:] if argv is None else argv)
    body = report(command.strip(), args.items, rows, args.rounds, (load, os.getloadavg()[0]))
    write_section("filters", body, args.results)
    print(body)


if __name__ == "__main__":
    main()
