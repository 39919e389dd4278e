"""How much per-epoch negatives help, and how much of that is leakage.

Three ways to feed training negatives on the MovieLens-100k top-n protocol, same seed:
  fixed            the protocol's single draw (avoids every interaction, docs/protocol.md)
  fresh, leak-free new draws each epoch avoiding training positives only (what
                   --resample-negatives does)
  fresh, leaky     new draws each epoch avoiding every interaction, held-out items included:
                   hundreds of draws never touch the held-out items, which the model can learn

Run folders go under runs/bench/negatives_leak/.

    python -m bench.negatives_leak
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bench.lib import training_api
from bench.lib.fits import fits_folder
from bench.lib.results import write_section

MODES = ("fixed", "fresh, leak-free", "fresh, leaky")


def run(model: str, mode: str, seed: int) -> dict:
    """One fit in a worker: its metrics.json."""
    options = {"model": model, "task": "topn", "seed": seed,
               "resample_negatives": mode != "fixed"}
    out = fits_folder("negatives_leak") / f"{model}-{mode.replace(', ', '-')}-{seed}"
    if mode == "fresh, leaky":
        return training_api.fit_with_leaky_negatives(options, out)
    return training_api.fit_in_worker(options, out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["fm", "gmlfm"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cases = [(m, mode) for m in args.models for mode in MODES]
    with training_api.fit_workers(2) as pool:
        results = list(pool.map(run, *zip(*cases), [args.seed] * len(cases)))
    lines = [f"## negatives-leak: MovieLens-100k top-n, seed {args.seed}, defaults\n",
             "Command: `python -m bench.negatives_leak`\n",
             "| model | training negatives | valid HR@10 | test HR@10 | test NDCG@10 |",
             "|---|---|---|---|---|"]
    for (model, mode), r in zip(cases, results):
        lines.append(f"| {model} | {mode} | {r['valid']['hr@10']:.4f} | {r['test']['hr@10']:.4f} "
                     f"| {r['test']['ndcg@10']:.4f} |")
    lines.append("\nThe leaky row's gain over the leak-free one is information about the "
                 "held-out items, not a better model; gmlrec's `--resample-negatives` is the "
                 "leak-free kind.")
    write_section("negatives-leak", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
