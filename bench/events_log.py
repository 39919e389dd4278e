"""What the event log costs a write: POST /users/{id}/interactions per second over HTTP, with
the log on and off, on Redis (AOF, appendfsync always, as compose runs it) and in process.

    python -m bench.events_log [--requests 2000] [--concurrency 8] [--rounds 3]
    python -m bench.events_log --smoke --results PATH      # tiny sizes, seconds

A synthetic GML-FM-dnn bundle with a history field of 10 (bench/lib/synthetic_bundle.py:
random weights; the write path moves a history model's state, as the default model's does)
is served by `python -m service` (one worker). Each round starts, for each of the four
configurations in turn (so that load drift hits them alike), a fresh server: on a Redis of
the bench's own with AOF in a temporary folder, under a fresh key prefix, or in process with
the file log in a fresh folder; GMLREC_EVENTS_LOG true or false. --requests POSTs of one item
each (a training user, a catalog item, an explicit `at`) go over --concurrency keep-alive
connections. After each run with the log on, the log is exported and must hold every
acknowledged event (the run fails otherwise). Events/s is acknowledged events per second of
the run; the ratio is the log's on / off within one round, then the median over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.lib.http_load import LoadResult, encode, load
from bench.lib.results import RESULTS, write_section
from bench.lib.synthetic_bundle import export_synthetic
from bench.scale_out import serving
from bench.two_phase import cpu_flags
from bundle import load_bundle
from events.export import export_events
from events.retention import Retention
from tests.support.local_redis import RedisServer

SPEC = "synthetic:users=1000,items=2000,interactions=20000,seed=0"
HISTORY = 10
AT = 1_733_500_000.0
CONFIGS = (("redis", True), ("redis", False), ("in-process", True), ("in-process", False))
SMOKE = {"requests": 60, "concurrency": 2, "rounds": 1}


@dataclass(frozen=True)
class Run:
    store: str
    log: bool
    result: LoadResult

    @property
    def events_per_s(self) -> float:
        return self.result.requests / self.result.seconds


def drive(port: int, users: list[str], items: list[str], requests: int, concurrency: int
          ) -> LoadResult:
    bodies = [encode("POST", f"/users/{users[i % len(users)]}/interactions",
                     {"item_ids": [items[(i * 7) % len(items)]], "at": AT + i})
              for i in range(requests)]
    result = asyncio.run(load("127.0.0.1", port, lambda i: bodies[i], concurrency, requests,
                              600))
    if result.failures:
        raise RuntimeError(f"{result.failures} failed writes")
    return result


def one_run(bundle: Path, redis: RedisServer, store: str, log: bool, args, users, items,
            scratch: Path) -> Run:
    prefix, folder = f"bench-{uuid.uuid4().hex[:8]}", scratch / uuid.uuid4().hex[:8]
    url = redis.url if store == "redis" else ""
    settings = {"GMLREC_EVENTS_LOG": "true" if log else "false",
                "GMLREC_EVENTS_DIR": str(folder), "GMLREC_REDIS_PREFIX": prefix,
                "GMLREC_REDIS_TIMEOUT_S": "2"}
    with serving(bundle, url, 1, "", settings) as server:
        result = drive(server.port, users, items, args.requests, args.concurrency)
    if log:  # every acknowledged event is in the log
        source = url if store == "redis" else str(folder)
        summary = export_events(source, scratch / "export", prefix=prefix,
                                retention=Retention())
        if summary.events != result.requests:
            raise RuntimeError(f"{store}: {result.requests} acknowledged, "
                               f"{summary.events} exported")
    return Run(store, log, result)


def report(runs: list[Run], args, flags: set[str], minutes: float) -> str:
    rows = ["| store | log | events/s (median of rounds) | p50 ms | p99 ms | on / off |",
            "|---|---|---|---|---|---|"]
    for store in ("redis", "in-process"):
        on = [r for r in runs if r.store == store and r.log]
        off = [r for r in runs if r.store == store and not r.log]
        ratio = statistics.median(a.events_per_s / b.events_per_s for a, b in zip(on, off))
        for label, group in (("on", on), ("off", off)):
            latencies = np.concatenate([r.result.latencies_ms for r in group])
            rows.append(f"| {store} | {label} | "
                        f"{statistics.median(r.events_per_s for r in group):.0f} | "
                        f"{np.percentile(latencies, 50):.2f} | {np.percentile(latencies, 99):.2f}"
                        f" | {f'{ratio:.3f}' if label == 'on' else ''} |")
    avx = "avx2" if "avx2" in flags else "no avx2"
    return "\n".join([
        "## Event log: what it costs a write", "",
        f"`python -m bench.events_log --requests {args.requests} --concurrency "
        f"{args.concurrency} --rounds {args.rounds}` ({minutes:.1f} min; CPU flags: {avx}).",
        "", "POST /users/{id}/interactions, one item each, over HTTP to `python -m service` "
        "(one worker) serving a synthetic GML-FM-dnn bundle with a history field of 10, so "
        "every write also moves the user's state. Redis: a redis-server of the bench's own "
        "with `appendonly yes`, `appendfsync always` (compose's policy), the log a stream per "
        "user `XADD`ed in the write's script. In process: the file log, one `write()` a batch. "
        "Every run with the log on was exported and held every acknowledged event. The load "
        "generator shares the machine's cores with the server and Redis.", "", *rows, ""])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.events_log")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: does it run")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gmlrec-events-bench-") as tmp:
        scratch = Path(tmp)
        bundle = export_synthetic(SPEC, "gmlfm", scratch / "models", "events", dim=32,
                                  history=HISTORY).path
        loaded = load_bundle(bundle, verify=False)
        users, items = [str(u) for u in loaded.users.ids[:500]], \
            [str(i) for i in loaded.catalog.ids[:1000]]
        (scratch / "redis").mkdir()
        redis = RedisServer(args=("--dir", str(scratch / "redis"), "--appendonly", "yes",
                                  "--appendfsync", "always")).start()
        try:
            runs = [one_run(bundle, redis, store, log, args, users, items, scratch)
                    for _ in range(args.rounds) for store, log in CONFIGS]
        finally:
            redis.stop()
    cpuinfo = Path("/proc/cpuinfo")
    flags = cpu_flags(cpuinfo.read_text()) if cpuinfo.exists() else set()
    body = report(runs, args, flags, (time.monotonic() - started) / 60)
    print(body)
    write_section("events-log", body, args.results)


if __name__ == "__main__":
    main()
