"""Where GML-FM's metric transform starts: the paper's N(0, 0.01) or the identity.

GML-FM-dnn at 1–3 layers on the MovieLens-100k top-n protocol, defaults otherwise, with each
start. A N(0, 0.01) layer maps every embedding to nearly the same t, so the distance and the
whole pair term start near zero, a thousandfold smaller per layer; the identity start makes
every depth begin as the Euclidean metric.

    python -m bench.gmlfm_init [--seeds 0]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor

from bench.results import mean_std, write_section

STARTS = ("paper", "identity")


def run(layers: int, start: str, seed: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from training.config import resolve
    from training.loop.evaluation import test_report
    from training.loop.trainer import fit
    from training.models import build_model
    from training.pipeline import prepare

    config = resolve({}, {"model": "gmlfm", "layers": layers, "transform_init": start,
                          "seed": seed})
    data, split = prepare(config)
    torch.manual_seed(seed)
    model = build_model("gmlfm", data.schema.n_features, split.train.slot_field, config)
    result = fit(model, split, config, progress=False)
    return {"valid": result.history[result.best_epoch - 1].valid,
            "test": test_report(model, split, seed), "best_epoch": result.best_epoch}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args(argv)
    cases = [(layers, start, seed) for layers in (1, 2, 3) for start in STARTS
             for seed in args.seeds]
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(run, *zip(*cases)))
    seeds = ", ".join(map(str, args.seeds))
    lines = [f"## gmlfm-init: GML-FM-dnn transform start, MovieLens-100k top-n, seeds {seeds}\n",
             "Command: `python -m bench.gmlfm_init`\n",
             "| layers | transform start | valid HR@10 | test HR@10 | test NDCG@10 | best epoch |",
             "|---|---|---|---|---|---|"]
    for layers in (1, 2, 3):
        for start in STARTS:
            found = [r for (n, s, _), r in zip(cases, results) if (n, s) == (layers, start)]
            cells = [mean_std([r[part][m] for r in found])
                     for part, m in (("valid", "hr@10"), ("test", "hr@10"), ("test", "ndcg@10"))]
            epochs = ", ".join(str(r["best_epoch"]) for r in found)
            lines.append(f"| {layers} | {start} | " + " | ".join(cells) + f" | {epochs} |")
    write_section("gmlfm-init", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
