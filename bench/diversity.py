"""Diversity: what maximal marginal relevance (`diversity=λ` on /recommend) costs in accuracy
and buys in variety, on the default model.

    python -m bench.diversity [--run runs/gmlfm-gem-history] [--models-dir models]
    python -m bench.diversity --quick --data SPEC --results PATH   # a tiny fit, seconds

The default model (training/bootstrap.py's recipe: GML-FM-dnn + GEM with a history field on
MovieLens-100k), its run folder and its exported bundle, as `python -m training bootstrap`
leaves them (fitted here when missing). For each λ in LAMBDAS:

- accuracy, the project's protocol (docs/protocol.md: each test user's held-out next
  interaction among 99 sampled negatives, scored by the run's own model in that
  interaction's history window): the 100 candidates are ranked by score (ties against the
  positive: pessimistic), the top K = 50 (the service's K for n = 10) re-ranked to 10 by
  MMR with the bundle's item similarity (bundle/item_similarity.py, the service's own code),
  and HR@10 and NDCG@10 read from the positive's place in that list; at λ = 0 they are
  metrics.json's test hr@10 and ndcg@10 (checked);
- variety, as clients get it: GET /recommend/{user}?n=10&diversity=λ for every training user
  from the service in process (create_app, in-process store): the mean of the answers'
  `intra_list_similarity`, and catalog coverage, the share of the catalog's items that at
  least one user's list holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from bench.lib import training_api
from bench.lib.results import RESULTS, write_section
from bundle import load_bundle, reference_scorer
from bundle.item_similarity import ItemSimilarity, mmr, symmetric
from service.app import create_app
from service.settings import Settings
from training.bootstrap import DEFAULT_NAME, DEFAULT_OPTIONS

LAMBDAS = (0.0, 0.3, 0.6)
N = 10
POOL = 50  # K for n = 10 (service/similar.py's pool_size)
QUICK_OPTIONS = {"epochs": 1, "dim": 8}
QUICK_USERS = 40


@dataclass(frozen=True)
class Row:
    diversity: float
    hr: float
    ndcg: float
    ils: float
    coverage: float
    users: int


def protocol_metrics(items: np.ndarray, scores: np.ndarray, similarity: ItemSimilarity,
                     bundle, diversity: float) -> tuple[float, float]:
    """HR@10 and NDCG@10 of the test groups (the positive first in each) with MMR over each
    group's top POOL."""
    idx, val = bundle.catalog.rows()
    position = bundle.catalog.index_of(items.ravel().tolist()).reshape(items.shape)
    hits, gains = [], []
    for group in range(len(items)):
        s = scores[group]
        order = np.lexsort((np.arange(len(s)) == 0, -s))  # a tie puts the positive last
        pool = order[:POOL]
        if diversity > 0:
            rows = position[group, pool]
            sim = symmetric(similarity.among(idx[rows], val[rows]))
            listed = pool[mmr(s[pool], sim, N, diversity)]
        else:
            listed = pool[:N]
        place = np.flatnonzero(listed == 0)
        hits.append(float(len(place) > 0))
        gains.append(1.0 / np.log2(place[0] + 2.0) if len(place) else 0.0)
    return float(np.mean(hits)), float(np.mean(gains))


async def served_lists(models_dir: Path, users: list[str], diversity: float
                       ) -> tuple[list[list[str]], list[float]]:
    """Every user's /recommend answer (n = 10) at this λ, from the service in process: the
    items and the intra-list similarity."""
    app = create_app(Settings(models_dir=models_dir, reload_interval_s=0))
    lists, ils = [], []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for user in users:
                r = await client.get(f"/recommend/{user}",
                                     params={"n": N, "diversity": diversity})
                r.raise_for_status()
                answer = r.json()
                lists.append([i["item_id"] for i in answer["items"]])
                if answer["intra_list_similarity"] is not None:
                    ils.append(answer["intra_list_similarity"])
    return lists, ils


def measure(run: Path, bundle_path: Path, limit: int | None) -> tuple[list[Row], dict]:
    bundle = load_bundle(bundle_path)
    similarity = ItemSimilarity(reference_scorer(bundle))
    items, scores = training_api.protocol_groups(run)
    users = [str(u) for u in bundle.users.ids.tolist()][:limit]
    rows = []
    for diversity in LAMBDAS:
        hr, ndcg = protocol_metrics(items, scores, similarity, bundle, diversity)
        lists, ils = asyncio.run(served_lists(bundle_path.parents[1], users, diversity))
        covered = len({i for listed in lists for i in listed}) / len(bundle.catalog)
        rows.append(Row(diversity, hr, ndcg, float(np.mean(ils)), covered, len(users)))
    return rows, json.loads((run / "metrics.json").read_text())


def report(rows: list[Row], metrics: dict, what: str) -> str:
    test = metrics["test"]
    lines = [f"## diversity: MMR re-ranking on /recommend ({what})", "",
             "`python -m bench.diversity`. HR@10 and NDCG@10: the project's protocol (each test "
             "user's held-out next interaction among 99 sampled negatives, the run's own scores), "
             f"the top {POOL} of the 100 re-ranked to {N} by MMR with the service's item "
             "similarity (the pair measure of docs/math.md, Similar items; ties against the "
             "positive). Intra-list similarity (ILS, the mean of the answers' "
             "`intra_list_similarity`, in the model's own units: lower is more varied) and "
             "catalog coverage (the share of the catalog in at least one list): "
             f"`GET /recommend/{{user}}?n={N}&diversity=λ` for each of {rows[0].users} "
             "training users, from the service in process.", "",
             "| λ | HR@10 | NDCG@10 | ILS | coverage |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.diversity:g} | {row.hr:.4f} | {row.ndcg:.4f} | {row.ils:.4g} | "
                     f"{row.coverage:.4f} |")
    base = rows[0]
    lines += ["", f"At λ = 0 the protocol's numbers are the run's own metrics.json (test "
                  f"hr@10 {test['hr@10']:.4f}, ndcg@10 {test['ndcg@10']:.4f}). "]
    for row in rows[1:]:
        lines[-1] += (f"λ = {row.diversity:g}: HR@10 {row.hr - base.hr:+.4f}, NDCG@10 "
                      f"{row.ndcg - base.ndcg:+.4f}, ILS {row.ils - base.ils:+.3g}, coverage "
                      f"×{row.coverage / base.coverage:.2f}. ")
    return "\n".join(lines).rstrip()


def check(rows: list[Row], metrics: dict) -> None:
    """λ = 0 must be the protocol itself."""
    test = metrics["test"]
    if abs(rows[0].hr - test["hr@10"]) > 1e-9 or abs(rows[0].ndcg - test["ndcg@10"]) > 1e-6:
        raise SystemExit(f"bench.diversity: λ = 0 gave HR@10 {rows[0].hr}, NDCG@10 "
                         f"{rows[0].ndcg}; metrics.json says {test['hr@10']}, "
                         f"{test['ndcg@10']}")


def default_bundle(run: Path, models_dir: Path) -> Path:
    """The newest bundle of the default model, fitted and exported when missing."""
    found = sorted((models_dir / DEFAULT_NAME).glob("*/manifest.json"))
    if found and (run / "metrics.json").is_file():
        return found[-1].parent
    return training_api.fit_and_export(DEFAULT_OPTIONS, run, models_dir, DEFAULT_NAME)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.diversity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs") / DEFAULT_NAME)
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--quick", action="store_true",
                        help="a tiny fit of the default recipe on --data, 40 users")
    parser.add_argument("--data", default="synthetic:users=60,items=300,interactions=2000",
                        help="--quick's data spec")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        with tempfile.TemporaryDirectory() as tmp:
            options = {**DEFAULT_OPTIONS, **QUICK_OPTIONS, "data": args.data}
            bundle = training_api.fit_and_export(options, Path(tmp, "run"),
                                                 Path(tmp, "models"), DEFAULT_NAME)
            rows, metrics = measure(Path(tmp, "run"), bundle, QUICK_USERS)
        check(rows, metrics)
        write_section("diversity", report(rows, metrics, f"quick: {args.data}"), args.results)
        print(report(rows, metrics, f"quick: {args.data}"))
        return
    bundle = default_bundle(args.run, args.models_dir)
    rows, metrics = measure(args.run, bundle, None)
    check(rows, metrics)
    body = report(rows, metrics, "MovieLens-100k, the default model")
    write_section("diversity", body, args.results)
    print(body)


if __name__ == "__main__":
    main()
