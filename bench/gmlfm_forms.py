"""Which exact GML-FM form trains fastest at each instance width W: forward plus backward of
the pair term on random batches, each form timed in interleaved rounds in one run, so the
rule behind `form="auto"` (gram while W ≤ 1.5 k, else additive) is checked, not assumed.

    python -m bench.gmlfm_forms
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence

import torch

from bench.lib import training_api
from bench.lib.results import write_section

FORMS = ("pairwise", "gram", "additive")


def time_forms(width: int, dim: int, batch: int, rounds: int, steps: int) -> dict[str, float]:
    """Median milliseconds per training step of each form's pair term at this width."""
    torch.manual_seed(0)
    model = training_api.gmlfm_dnn(10_000, dim)
    idx = torch.randint(0, 10_000, (batch, width))
    val = torch.rand(batch, width)
    seconds: dict[str, list[float]] = {form: [] for form in FORMS}
    for _ in range(rounds):
        for form in FORMS:
            pair = getattr(model, form)
            start = time.perf_counter()
            for _ in range(steps):
                pair(idx, val).sum().backward()
            seconds[form].append((time.perf_counter() - start) / steps * 1e3)
    return {form: statistics.median(values) for form, values in seconds.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--widths", type=float, nargs="+", default=[0.25, 0.5, 1, 1.5, 2, 3],
                        help="instance widths W as multiples of k")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args(argv)
    lines = [f"## gmlfm-forms: DNN (1 layer) pair term, batch {args.batch}, forward + backward\n",
             "Command: `python -m bench.gmlfm_forms`\n",
             "| k | W | pairwise ms | gram ms | additive ms | fastest | auto picks |",
             "|---|---|---|---|---|---|---|"]
    for dim in args.dims:
        auto = training_api.gmlfm_dnn(1, dim)
        for width in sorted({max(2, round(m * dim)) for m in args.widths}):
            ms = time_forms(width, dim, args.batch, args.rounds, args.steps)
            cells = " | ".join(f"{ms[form]:.2f}" for form in FORMS)
            lines.append(f"| {dim} | {width} | {cells} | {min(ms, key=ms.get)} | "
                         f"{auto.cheapest_form(width)} |")
            print(lines[-1], flush=True)
    write_section("gmlfm-forms", "\n".join(lines))


if __name__ == "__main__":
    main()
