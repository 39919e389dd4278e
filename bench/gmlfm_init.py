"""Where GML-FM's metric transform starts: the paper's N(0, 0.01) or the identity.

GML-FM-dnn at 1–3 layers on the MovieLens-100k top-n protocol, defaults otherwise, with each
start. A N(0, 0.01) layer maps every embedding to nearly the same t, so the distance and the
whole pair term start near zero, a thousandfold smaller per layer; the identity start makes
every depth begin as the Euclidean metric. Run folders go under runs/bench/gmlfm_init/.

    python -m bench.gmlfm_init [--seeds 0]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bench.lib import training_api
from bench.lib.fits import fits_folder
from bench.lib.results import mean_std, write_section

STARTS = ("paper", "identity")


def run(layers: int, start: str, seed: int) -> dict:
    """One fit in a worker: its metrics.json."""
    options = {"model": "gmlfm", "layers": layers, "transform_init": start, "seed": seed}
    return training_api.fit_in_worker(options,
                                      fits_folder("gmlfm_init") / f"L{layers}-{start}-{seed}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args(argv)
    cases = [(layers, start, seed) for layers in (1, 2, 3) for start in STARTS
             for seed in args.seeds]
    with training_api.fit_workers(2) as pool:
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
