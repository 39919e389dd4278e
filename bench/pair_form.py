"""The pair term's two exact forms side by side: which one export picks, and what each costs.

    python -m bench.pair_form [--items 100000] [--windows 10 30 50 200] [--users 60]

For synthetic GML-FM-dnn bundles (k = 64, random weights N(0, 0.3²):
bench/lib/synthetic_bundle.py) with a history field of each window N (user width R = N + the
synthetic users' own columns), each exported twice, in the row form and in the matrix form
(training/export/tables.py), in process on one onnxruntime thread: the median one-user top-10
call through model.onnx, the two forms taking turns over the same users; whether both forms
gave each user the same top 10, and their largest score difference against the scores'
spread; the multiply-adds per item feature each form costs by export's count, and the form
export picks.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.lib.results import write_section
from bench.lib.synthetic_bundle import export_synthetic
from bundle import OnnxScorer, load_bundle
from bundle import format as fmt
from training.export.tables import cheaper_pair_form, pair_form_costs

OUT = Path("runs/bench/pair_form")
SPEC = "synthetic:users=1000,items={items},interactions=20000,seed=0"
WARM = 5
WEIGHT_STD = 0.3  # as the parity tests: every term of a score moves it


@dataclass
class Measured:
    window: int
    width: int  # R, the user's columns
    costs: dict[str, int]  # multiply-adds per item feature, by form
    picked: str  # the form export picks
    call_ms: dict[str, float]  # median one-user top-10 call, by form
    same_top: int  # users whose top 10 both forms agree on
    users: int
    score_gap: float  # largest |rows − matrix| score over the users' top 10s, / their spread


def measure(items: int, window: int, users: int) -> Measured:
    scorers, bundles = {}, {}
    for form in fmt.PAIR_FORMS:
        made = export_synthetic(SPEC.format(items=items), "gmlfm", OUT / "models",
                                f"n{window}-{form}", history=window, pair_form=form,
                                weight_std=WEIGHT_STD)
        bundles[form] = load_bundle(made.path, verify=False)
        scorers[form] = OnnxScorer(bundles[form], threads=1, two_phase_from=None)
    bundle = bundles[fmt.PAIR_ROWS]
    states = [scorers[fmt.PAIR_ROWS].user_state(*(a[None] for a in bundle.users.row(u)))
              for u in range(min(users, len(bundle.users)))]
    times: dict[str, list[float]] = {form: [] for form in fmt.PAIR_FORMS}
    answers: dict[str, list] = {form: [] for form in fmt.PAIR_FORMS}
    for turn, state in enumerate(states):
        for form in fmt.PAIR_FORMS if turn % 2 else reversed(fmt.PAIR_FORMS):
            started = time.perf_counter()
            answers[form].append(scorers[form].float32_top_n(state, 10, None))
            times[form].append(time.perf_counter() - started)
    same, gap = 0, 0.0
    for state, rows, matrix in zip(states, answers[fmt.PAIR_ROWS], answers[fmt.PAIR_MATRIX]):
        same += bool(np.array_equal(rows[0], matrix[0]))
        every = np.arange(len(bundle.catalog))[None]
        scores = scorers[fmt.PAIR_ROWS].score(state, every)[0]
        spread = float(np.ptp(scores)) or 1.0
        on_top = np.concatenate([rows[0][0], matrix[0][0]])[None]
        gap = max(gap, float(np.abs(scorers[fmt.PAIR_ROWS].score(state, on_top)
                                    - scorers[fmt.PAIR_MATRIX].score(state, on_top)).max())
                  / spread)
    return Measured(window, bundle.scoring["user_width"], pair_form_costs(bundle.scoring),
                    cheaper_pair_form(bundle.scoring),
                    {f: 1e3 * float(np.median(t[WARM:] or t)) for f, t in times.items()},
                    same, len(states), gap)


def report(rows: list[Measured], items: int, loads: list[float], users: int) -> str:
    lines = [
        "## pair-form: the row form against the matrix form of the pair term", "",
        f"Command: `python -m bench.pair_form --items {items} --windows "
        f"{' '.join(str(m.window) for m in rows)} --users {users}`. Load average "
        f"{loads[0]:.1f} at the start, {loads[1]:.1f} at the end (1 min), on this machine's "
        f"{len(os.sched_getaffinity(0))} cores, which other work may share. Synthetic "
        f"GML-FM-dnn bundles, k = 64, {items:,} items, random weights N(0, {WEIGHT_STD}²), a "
        "history field of "
        "window N; each exported in both forms. In process, one onnxruntime thread: median "
        "one-user top-10 call through model.onnx (the two forms taking turns, the first "
        f"{WARM} calls left out).", "",
        "| window N | user width R | multiply-adds per item feature, rows / matrix | export "
        "picks | rows ms | matrix ms | faster | same top 10 | largest score gap / spread |",
        "|---|---|---|---|---|---|---|---|---|"]
    right = 0
    for m in rows:
        faster = min(m.call_ms, key=m.call_ms.get)
        right += faster == m.picked
        lines.append(
            f"| {m.window} | {m.width} | {m.costs[fmt.PAIR_ROWS]:,} / "
            f"{m.costs[fmt.PAIR_MATRIX]:,} | {m.picked} | {m.call_ms[fmt.PAIR_ROWS]:.1f} | "
            f"{m.call_ms[fmt.PAIR_MATRIX]:.1f} | {faster} "
            f"({max(m.call_ms.values()) / min(m.call_ms.values()):.2f}×) | "
            f"{m.same_top} of {m.users} | {m.score_gap:.1e} |")
    lines += ["", f"Export picked the faster form for {right} of {len(rows)} windows."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pair_form",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--windows", type=int, nargs="+", default=[10, 30, 50, 200])
    parser.add_argument("--users", type=int, default=60)
    args = parser.parse_args(argv)
    loads = [os.getloadavg()[0]]
    rows = [measure(args.items, window, args.users) for window in args.windows]
    loads.append(os.getloadavg()[0])
    text = report(rows, args.items, loads, args.users)
    write_section("pair-form", text)
    print(text)


if __name__ == "__main__":
    main()
