"""A run's top-n test protocol replayed through the HTTP API (tests/support/replay.py): every
test user's held-out item and its sampled candidates go through POST /score of a real server,
and the answers are ranked as the trainer ranks them. Equal HR@10 / NDCG@10 (to 4 decimals)
say the service serves the model that was measured, end to end.

    python -m bench.serve_replay [--bundle BUNDLE]

The bundle defaults to the MovieLens-100k one bench/export_serving.py leaves; its run folder
is the one its manifest names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.lib.results import write_section
from bench.serve import EXPORTED, newest, serving
from tests.support.local_redis import RedisServer
from tests.support.replay import replay_over_http


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_replay",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="bundle version folder (MovieLens-100k)")
    args = parser.parse_args(argv)
    bundle = args.bundle or newest(EXPORTED / "gmlfm")
    manifest = json.loads((bundle / "manifest.json").read_text())
    run = Path(manifest["run"]["path"])
    trained = json.loads((run / "metrics.json").read_text())["test"]
    redis = RedisServer().start()
    try:
        with serving(bundle, redis.url, "inline", len(os.sched_getaffinity(0))) as server:
            served = replay_over_http(server.base, run)
    finally:
        redis.stop()
    rows = [f"| {what} | {m['hr@10']:.4f} | {m['ndcg@10']:.4f} |"
            for what, m in (("metrics.json (torch, at training)", trained),
                            ("POST /score over HTTP, real Redis", served))]
    same = all(round(trained[k], 4) == round(served[k], 4) for k in ("hr@10", "ndcg@10"))
    command = "python -m bench.serve_replay " + " ".join(sys.argv[1:] if argv is None else argv)
    write_section("serve-replay", "\n".join([
        "## serve-replay: the MovieLens-100k test protocol through the HTTP API", "",
        f"Command: `{command.strip()}`. Bundle `{manifest['name']}/{manifest['version']}` "
        f"({manifest['model']['kind']}, run `{run}`); each of the {served['groups']} test "
        "groups (a user's held-out item and its sampled candidates) scored by POST /score of "
        "`python -m service` (one worker, its own Redis), ranked tie-pessimistically as in "
        "training.", "",
        "| scores from | HR@10 | NDCG@10 |", "|---|---|---|", *rows, "",
        f"Equal to 4 decimals: {'yes' if same else 'NO'}."]))
    print("\n".join(rows))


if __name__ == "__main__":
    main()
