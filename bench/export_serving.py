"""Export and whole-catalog serving, measured: what a bundle costs to write and to query.

    python -m bench.export_serving [--epochs 5] [--threads 1,2]

1. MovieLens-100k: fit GML-FM-dnn (k = 64, top-n, a short run), export it, and replay the
   run's top-n test protocol through the bundle's ONNX graph (metrics.json to 4 decimals).
2. Synthetic 100,000 items, k = 64: GML-FM-dnn and FM built with random weights (training
   adds nothing to a timing), exported with write_bundle.
For each bundle: export seconds and size, then the top 10 of the whole catalog for one user
through onnxruntime, the numpy reference and the naive torch model over every item, against
the time to read the item tables once; a batch of 32 users; for FM also FAISS IndexFlatIP on
the same vectors. Medians over repeated, interleaved calls; onnxruntime intra-op threads set
explicitly (this machine's 2 cores are shared, so 1 and 2 threads are both shown); the naive
torch model runs on 1 thread, as its 2-thread times swung tenfold on the shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.lib.results import write_section
from bench.lib.synthetic_bundle import export_synthetic, size_mb
from bench.lib.timing import Timing, interleaved, item_arrays, read_once
from bundle import Bundle, OnnxScorer, load_bundle, reference_scorer
from bundle import format as fmt
from training.config import resolve
from training.data.specs import load_data
from training.export import export_run
from training.export.rebuild import rebuild_model
from training.export.replay import replay_topn
from training.loop.batches import predict
from training.pipeline import fit_and_save

OUT = Path("runs/bench/export_serving")
SYNTHETIC = "synthetic:users=1000,items=100000,interactions=20000,seed=0"
BATCH = 32
ROUNDS = 60


def naive_torch(net: torch.nn.Module, data, user: int) -> Callable[[], None]:
    """The trained model's forward over every (user, item) row, then the top 10."""
    pairs = data.pairs(np.full(data.n_items, user), np.arange(data.n_items),
                       np.zeros(data.n_items, np.float32))

    def rank() -> None:
        scores = predict(net, pairs)
        np.argpartition(-scores, 10)[:10]
    return rank


def serving_times(bundle: Bundle, net: torch.nn.Module, data, threads: list[int],
                  naive_every: int) -> dict[str, Timing]:
    user = int(np.argmax(np.diff(bundle.array(fmt.SEEN_OFFSETS))))  # the most seen items
    seen = [bundle.users.seen_items(user)]
    idx, val = bundle.users.row(user)
    reference = reference_scorer(bundle)
    state = reference.user_state(idx[None], val[None])
    batch_rows = [bundle.users.row(u % len(bundle.users)) for u in range(BATCH)]
    batch = reference.user_state(np.stack([r[0] for r in batch_rows]),
                                 np.stack([r[1] for r in batch_rows]))
    batch_seen = [bundle.users.seen_items(u % len(bundle.users)) for u in range(BATCH)]
    torch.set_num_threads(min(threads))  # more threads on shared cores: 10× swings measured
    calls = {"user_state": (lambda: reference.user_state(idx[None], val[None]), 1),
             "read_once": (read_once(item_arrays(bundle)), 1),
             "numpy": (lambda: reference.top_n(state, 10, seen), 10),
             "naive": (naive_torch(net, data, user), naive_every)}
    for n in threads:
        scorer = OnnxScorer(bundle, threads=n)
        calls[f"ort{n}"] = (lambda s=scorer: s.top_n(state, 10, seen), 1)
        calls[f"batch{n}"] = (lambda s=scorer: s.top_n(batch, 10, batch_seen), 5)
    times = interleaved(calls, ROUNDS)
    return times | {f"batch{n}": times[f"batch{n}"] / BATCH for n in threads}


def faiss_flat(bundle: Bundle, threads: int) -> tuple[Timing, Timing, bool]:
    """FM's catalog as [S_I, const_I] under IndexFlatIP with query [S_U, 1]: the same ranking
    as the bundle's; returns FAISS ms, onnxruntime ms (no exclusion) and whether the top 10
    agree."""
    import faiss

    faiss.omp_set_num_threads(threads)
    vectors = np.hstack([bundle.item_table("matrix"), bundle.array(fmt.ITEM_CONST)[:, None]])
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, np.float32))
    scorer = OnnxScorer(bundle, threads=threads)
    state = scorer.user_state(*(a[None] for a in bundle.users.row(0)))
    query = np.hstack([state[:, 1:], np.ones((1, 1), np.float32)])
    same = set(index.search(query, 10)[1][0]) == set(scorer.top_n(state, 10)[0][0])
    times = interleaved({"faiss": (lambda: index.search(query, 10), 1),
                         "ort": (lambda: scorer.top_n(state, 10), 1)}, ROUNDS)
    return times["faiss"], times["ort"], same


def item_mb(bundle: Bundle) -> float:
    return sum(a.nbytes for a in item_arrays(bundle)) / 2**20


def movielens(epochs: int, threads: list[int]) -> dict:
    run = OUT / "ml100k-gmlfm"
    config = resolve({}, {"data": "movielens-100k", "model": "gmlfm", "distance": "dnn",
                          "epochs": epochs, "out": str(run)})
    metrics = fit_and_save(config, progress=False, overwrite=True)
    start = time.perf_counter()
    bundle_dir = export_run(run, OUT / "models")
    seconds = time.perf_counter() - start
    replayed = replay_topn(run, bundle_dir, threads=1)
    data = load_data("movielens-100k")
    bundle = load_bundle(bundle_dir)
    times = serving_times(bundle, rebuild_model(run).model, data, threads, 5)
    return {"name": f"MovieLens-100k GML-FM-dnn (trained {metrics['epochs']} epochs)",
            "items": data.n_items, "export_s": seconds, "size_mb": size_mb(bundle_dir),
            "item_mb": item_mb(bundle), "times": times, "replay": replayed,
            "metrics": metrics["test"]}


def synthetic(model: str, threads: list[int]) -> dict:
    made = export_synthetic(SYNTHETIC, model, OUT / "models", f"synthetic-{model}")
    bundle = load_bundle(made.path)
    result = {"name": f"synthetic 100k items {'GML-FM-dnn' if model == 'gmlfm' else 'FM'} "
                      "(random weights)", "items": made.data.n_items, "export_s": made.export_s,
              "size_mb": size_mb(made.path), "item_mb": item_mb(bundle),
              "times": serving_times(bundle, made.net, made.data, threads, 10)}
    if model == "fm":
        result["faiss"] = faiss_flat(bundle, min(threads))
    return result


def report(rows: list[dict], threads: list[int]) -> str:
    ml, gml, fm = rows
    single = min(threads)
    lines = ["## export-serving: bundle export and whole-catalog top-10", "",
             "Command: `python -m bench.export_serving` (one run, a few minutes). Top 10 of the "
             "whole catalog for one user (its training items excluded); times are medians of "
             "interleaved calls, the best call in brackets. Load average over the last 5 "
             f"minutes of the run: {os.getloadavg()[1]:.1f} on this machine's {os.cpu_count()} "
             "cores, which other work shares.", "",
             "| bundle | items | export s | size MB | item tables MB | read-once ms | "
             f"onnxruntime ms, {' / '.join(f'{n} thr' for n in threads)} | numpy ms | "
             f"naive torch ms, {single} thr | × naive ({single} thr) | × read-once ({single} thr) "
             "| batch 32, ms/user | "
             "user state µs |", "|---" * 13 + "|"]
    for r in rows:
        t = r["times"]
        ort = " / ".join(str(t[f"ort{n}"]) for n in threads)
        lines.append(
            f"| {r['name']} | {r['items']:,} | {r['export_s']:.2f} | {r['size_mb']:.1f} | "
            f"{r['item_mb']:.1f} | {t['read_once']} | {ort} | {t['numpy'].median:.1f} | "
            f"{t['naive'].median:.0f} | {t['naive'].median / t[f'ort{single}'].median:.0f}× | "
            f"{t[f'ort{single}'].median / t['read_once'].median:.1f}× | "
            f"{fastest(t, 'batch', threads):.2f} | {1e3 * t['user_state'].median:.0f} |")
    faiss, fm_ort, same = fm["faiss"]
    lines += ["", f"FM at 100k items, FAISS `IndexFlatIP` on [S_I, const_I] with query "
              f"[S_U, 1] and onnxruntime, {single} thread each: FAISS {faiss} ms, onnxruntime "
              f"{fm_ort} ms; the same top 10: {'yes' if same else 'NO'}.", "",
              "MovieLens-100k replay of the run's top-n test protocol through the bundle "
              "(onnxruntime, each test user's 100 candidates):", "",
              "| | HR@10 | NDCG@10 |", "|---|---|---|",
              f"| metrics.json (torch) | {ml['metrics']['hr@10']:.4f} | "
              f"{ml['metrics']['ndcg@10']:.4f} |",
              f"| bundle, onnxruntime | {ml['replay']['hr@10']:.4f} | "
              f"{ml['replay']['ndcg@10']:.4f} |", "",
              "Targets at 100k items (GML-FM-dnn unless named), on medians:"]
    lines += targets(gml, fm, threads)
    lines += ["", "User states are built in numpy (column *user state*, measured between the "
              "catalog scans, so with cold caches): a second ONNX graph would add an "
              "onnxruntime call of its own to save little, and the service caches states."]
    return "\n".join(lines)


def targets(gml: dict, fm: dict, threads: list[int]) -> list[str]:
    """Each target met or missed by how much, and for a miss, why, from the measurements."""
    t, single = gml["times"], min(threads)
    ort, read, naive = fastest(t, "ort", threads), t["read_once"], t["naive"].median
    best_ort = min(t[f"ort{n}"].best for n in threads)
    faiss, fm_ort, _ = fm["faiss"]
    bandwidth = (f"the graph reads {gml['item_mb']:.0f} MB of item tables, and one plain read "
                 f"of them takes {read.median:.1f} ms here at this load; the best call took "
                 f"{best_ort:.2f} ms")
    return [
        target("onnxruntime top 10, one user", ort, 15, "ms", why=bandwidth),
        target(f"speed-up over the naive torch model ({single} thread each)",
               naive / t[f"ort{single}"].median, 100, "×", low=False,
               why=NAIVE.format(naive=naive, need=naive / 100, read=read.median)),
        target(f"onnxruntime ({single} thread) / read-once", t[f"ort{single}"].median
               / read.median, 3, "×", why="the graph passes over feature_v and feature_t "
               "in two Gemms, then gathers the gains per item"),
        target("FM: onnxruntime / FAISS flat", fm_ort.median / faiss.median, 1, "×",
               why=f"both make one pass over the same {fm['item_mb']:.0f} MB (a Gemm, a "
               f"top 10); best calls FAISS {faiss.best:.2f} ms, onnxruntime "
               f"{fm_ort.best:.2f} ms"),
        target("batch of 32, per user", fastest(t, "batch", threads), 8, "ms",
               why=f"best call {min(t[f'batch{n}'].best for n in threads):.2f} ms per user; "
               "the batch reads the tables once, its (32, items) gains and per-item gathers "
               "are what remains, on cores shared with other work"),
    ]


NAIVE = ("the trained torch model ranks the catalog in {naive:.0f} ms because its forward is "
         "itself an exact fast form (the Gram form, O(W² k) per row with W = 4 columns) that "
         "runs the DNN once per distinct feature of each 8,192-row batch, not once per row; "
         "100× would need onnxruntime at {need:.1f} ms, against {read:.1f} ms for one plain "
         "read of the item tables. The split's gain grows with W: it pays for the user's "
         "features once per request, the naive model once per item")


def fastest(times: dict[str, Timing], prefix: str, threads: list[int]) -> float:
    """The lowest median over the thread counts tried."""
    return min(times[f"{prefix}{n}"].median for n in threads)


def target(what: str, value: float, bound: float, unit: str, why: str,
           low: bool = True) -> str:
    met = value <= bound if low else value >= bound
    verdict = "met" if met else f"missed by {abs(value - bound):.2f} {unit}: {why}"
    return f"- {what}: {value:.2f} {unit} (target {'≤' if low else '≥'} {bound} {unit}), " \
           f"{verdict}."


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="MovieLens-100k fit epochs")
    parser.add_argument("--threads", default="1,2", help="onnxruntime intra-op threads")
    args = parser.parse_args(argv)
    threads = [int(n) for n in args.threads.split(",")]
    rows = [movielens(args.epochs, threads), synthetic("gmlfm", threads),
            synthetic("fm", threads)]
    (OUT / "rows.json").write_text(json.dumps(rows, indent=1, default=vars))
    text = report(rows, threads)
    write_section("export-serving", text)
    print(text)


if __name__ == "__main__":
    main()
