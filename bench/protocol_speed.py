"""Time the data protocols and GEM's graph on a synthetic set of about 1M interactions.

    python -m bench.protocol_speed
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable, Sequence

from bench.lib import training_api
from bench.lib.results import write_section


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="users=20000,items=50000,interactions=1150000")
    args = parser.parse_args(argv)
    data, t_gen = timed(lambda: training_api.synthetic_data(args.params))
    topn, t_topn = timed(lambda: training_api.split_data(data, "topn"))
    rating, t_rating = timed(lambda: training_api.split_data(data, "rating"))
    graph, t_graph = timed(lambda: training_api.gem_graph(topn, data.schema))
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    rows = [
        ("generate synthetic data", t_gen, f"{len(data.users):,} interactions"),
        ("top-n protocol (leave-one-out, 2 negatives, 2 × 99 candidates)", t_topn,
         f"{len(topn.train):,} train instances, {topn.test.n_groups:,} test groups"),
        ("rating protocol (2 negatives, 70/20/10)", t_rating,
         f"{len(rating.train):,} / {len(rating.valid):,} / {len(rating.test):,}"),
        ("GEM graph (type a, every field) from the top-n training set", t_graph,
         f"{graph.n_nodes:,} nodes, {graph.n_edges:,} edges"),
    ]
    body = [f"## protocol-speed: synthetic:{args.params}\n",
            "Command: `python -m bench.protocol_speed`\n",
            "| step | seconds | output |", "|---|---|---|"]
    body += [f"| {name} | {secs:.2f} | {out} |" for name, secs, out in rows]
    body.append(f"\nPeak resident memory of the whole script: {peak_gib:.2f} GiB.")
    write_section("protocol-speed", "\n".join(body))
    print("\n".join(body))


if __name__ == "__main__":
    main()
