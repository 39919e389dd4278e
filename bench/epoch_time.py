"""Epoch time of each model on the same MovieLens-100k top-n split, measured in one run and
reported as a ratio to FM. Models are timed in interleaved rounds so that machine noise hits
all of them alike; the median round counts.

    python -m bench.epoch_time
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

from bench.lib import training_api
from bench.lib.results import write_section

DEFAULT_MODELS: dict[str, dict] = {
    "fm": {},
    "gmlfm dnn L1 (auto form)": {"model": "gmlfm", "distance": "dnn", "layers": 1},
    "gmlfm dnn L1 pairwise": {"model": "gmlfm", "distance": "dnn", "layers": 1,
                              "form": "pairwise"},
    "gmlfm dnn L1 gram": {"model": "gmlfm", "distance": "dnn", "layers": 1, "form": "gram"},
    "gmlfm dnn L1 additive": {"model": "gmlfm", "distance": "dnn", "layers": 1,
                              "form": "additive"},
    "fm + GEM (graph a)": {"model": "fm", "embedding": "gcn"},
    "gmlfm dnn L1 + GEM (graph a)": {"model": "gmlfm", "embedding": "gcn"},
    "nfm": {"model": "nfm"},
    "transfm": {"model": "transfm"},
    "deepfm": {"model": "deepfm"},
    "afm": {"model": "afm"},
    "xdeepfm": {"model": "xdeepfm"},
}


def time_epochs(variants: dict[str, dict], rounds: int, data: str) -> dict[str, list]:
    """Seconds of each variant's epochs, one epoch of each per round."""
    runners = training_api.epoch_runners(variants, data)
    seconds: dict[str, list] = {name: [] for name in runners}
    for _ in range(rounds):
        for name, one_epoch in runners.items():
            start = time.perf_counter()
            one_epoch()
            seconds[name].append(time.perf_counter() - start)
    return seconds


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default="movielens-100k")
    args = parser.parse_args(argv)
    seconds = time_epochs(DEFAULT_MODELS, args.rounds, args.data)
    fm = statistics.median(seconds["fm"])
    lines = [f"## epoch-time: {args.data} top-n, k = 64, batch 256, {args.rounds} rounds\n",
             "Command: `python -m bench.epoch_time`\n",
             "| model | median epoch s | all rounds s | ratio to FM |", "|---|---|---|---|"]
    for name, values in seconds.items():
        med = statistics.median(values)
        rounds = ", ".join(f"{v:.2f}" for v in values)
        lines.append(f"| {name} | {med:.2f} | {rounds} | {med / fm:.2f}× |")
    write_section("epoch-time", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
