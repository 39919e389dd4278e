"""bench.scale_out's pure parts: /proc parsing and the targets' verdicts (never timings)."""

from __future__ import annotations

import argparse

import numpy as np

from bench.lib.http_load import LoadResult
from bench.scale_out import Memory, memory_of, parse_kb, report
from tests.support.processes import parse_status_ppid

STATUS = """Name:\tpython
PPid:\t4242
VmHWM:\t 1000000 kB
VmRSS:\t  819200 kB
RssAnon:\t  204800 kB
RssFile:\t  614400 kB
RssShmem:\t       0 kB
Threads:\t3
"""
ROLLUP = """00400000-7ffd0000 ---p 00000000 00:00 0    [rollup]
Rss:              819200 kB
Pss:              512000 kB
Private_Clean:      1024 kB
Private_Dirty:    203776 kB
Shared_Clean:     614400 kB
"""


def test_proc_status_and_smaps_rollup_give_anon_file_and_private_memory():
    assert parse_kb(STATUS)["RssAnon"] == 204800 and "Threads" not in parse_kb(STATUS)
    assert parse_status_ppid(STATUS) == 4242
    assert memory_of(STATUS, ROLLUP) == Memory(rss=800, anon=200, file=600, pss=500,
                                               private=200)


def _latency(ms: float) -> LoadResult:
    return LoadResult(1, np.full(10, ms), 0, 10 * ms / 1e3)


def _report(p50_ms: float, private_mb: float, split: tuple[float, float] = (0.8, 0.7),
            other_mb: float | None = None) -> str:
    worker = Memory(900, private_mb, 600, 600, private_mb)
    other = worker if other_mb is None else Memory(900, private_mb, 600, 600, other_mb)
    runs = {label: {"latency": _latency(p50_ms), "loaded": [worker, worker],
                    "served": [worker, other], "cpu": [3.0, 0.5]}
            for label in ("shared", "private")}
    rates = {1: {"requests": 100, "seconds": 1.0, "client_cpu": 0.2, "server_cpu": [1.6]},
             2: {"requests": 150, "seconds": 1.0, "client_cpu": 0.3, "server_cpu": list(split)}}
    args = argparse.Namespace(items=1_000_000, requests=10, throughput_requests=100,
                              concurrency=8)
    return report({"items": 1_000_000, "size_mb": 548.0, "export_s": 16.0}, runs, rates,
                  [1.0, 2.0], args)


def test_met_targets_say_met_and_misses_say_by_how_much_and_why():
    fine = _report(80.0, 150.0)
    assert "80.0 ms (target ≤ 150 ms): met." in fine and "missed" not in fine
    assert "150 MB (target ≤ 200 MB): met. The tables are shared" in fine
    assert "Two workers / one: 1.50×" in fine
    assert "| GMLREC_WORKERS=2 | 150 | 1.50 (0.80 + 0.70) | 30% |" in fine
    assert "did not share the load evenly" not in fine
    slow = _report(170.0, 260.0)
    assert "170.0 ms (target ≤ 150 ms): missed by 20.0 ms: each request" in slow
    assert "260 MB (target ≤ 200 MB): missed by 60 MB. The tables are shared" in slow
    assert "260 MB once loaded; serving added up to 0 MB" in slow
    assert "stacks 1 user(s) a call here" in slow


def test_an_uneven_split_between_the_workers_is_explained_only_when_measured():
    uneven = _report(80.0, 150.0, split=(1.08, 0.38))
    assert "| GMLREC_WORKERS=2 | 150 | 1.46 (1.08 + 0.38) | 30% |" in uneven
    assert "did not share the load evenly" in uneven and "8 keep-alive connections" in uneven


def test_workers_private_pages_apart_after_serving_are_explained_only_when_measured():
    assert "Private pages differ" not in _report(80.0, 150.0, other_mb=160.0)
    apart = _report(80.0, 150.0, other_mb=100.0)
    assert "The workers' Private pages differ by 50 MB after serving: they used 3.0 and " \
           "0.5 CPU seconds serving these requests" in apart
