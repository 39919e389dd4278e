"""bench.two_phase's report: its rows and the target's verdict (never timings)."""

from __future__ import annotations

import argparse

import numpy as np

from bench.lib.http_load import LoadResult
from bench.scale_out import Memory
from bench.two_phase import COMPARED, Measured, cpu_flags, int8_sentence, report


def _measured(model: str, float32_ms: float, two_phase_ms: float, exact: bool = True
              ) -> Measured:
    def latency(ms: float) -> LoadResult:
        return LoadResult(1, np.full(10, ms), 0, 10 * ms / 1e3)

    memory = Memory(700, 200, 500, 600, 200)
    return Measured(model, 1_000_000, 700.0, 170.0, {"float32": 20.0, "two-phase": 6.0},
                    {"float32": 548.0, "two-phase": 170.0}, 0.99, 0.0074, exact,
                    {"float32": float32_ms, "two-phase": two_phase_ms},
                    {"float32": latency(float32_ms), "two-phase": latency(two_phase_ms)},
                    {"float32": 25.0, "two-phase": 40.0},
                    {"float32": memory, "two-phase": memory}, COMPARED, 9.5)


def test_the_report_gives_each_path_and_the_verdict_for_gml_fm_only():
    args = argparse.Namespace(items=[1_000_000], requests=200, throughput_requests=800,
                              concurrency=8)
    text = report([_measured("gmlfm", 40.0, 18.0), _measured("fm", 12.0, 8.0, exact=False)],
                  [1.0, 2.0], args, AVX2)
    assert "| GML-FM-dnn | 1,000,000 | two-phase | 18.0 | 18.0 | 40 | 18.00 | 6.00 | 170 | " \
           "700 (200 + 500) |" in text
    assert "| GML-FM-dnn | 1,000,000 | 700 (170) | 99% | 0.740% | all | 50 of 50 | 9.50 " \
           "(18.00) |" in text
    assert "| FM | 1,000,000 | 700 (170) | 99% | 0.740% | NOT ALL | 50 of 50 |" in text
    assert "- GML-FM-dnn, 1,000,000 items: 2.22× (in process 2.22×): met" in text
    assert "- FM, 1,000,000 items: 1.50× (in process 1.50×)\n" in text
    assert "Why GML-FM-dnn" not in text
    slow = report([_measured("gmlfm", 40.0, 30.0)], [1.0, 2.0], args, AVX2)
    assert "1.33× (in process 1.33×): missed (1.33×)" in slow
    assert "products alone, MatMulInteger over the two code tables and nothing else, took " \
           "9.5 ms in process, where half the float32 call is 20.0 ms (the whole two-phase " \
           "call: 30.0 ms; reading its tables once: 6.0 ms)" in slow
    assert "at 1,000,000 items a float32 answer took 40.0 ms at p50 where its call alone " \
           "took 40.0 ms in process." in slow
    assert "This machine's CPUs have AVX2 and none of AVX-512 VNNI, AVX-VNNI, AMX-INT8" in slow


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni amx_bf16 amx_int8
bugs\t\t: spectre_v1

processor\t: 1
flags\t\t: fpu sse2 avx avx2 avx512f avx512_vnni amx_bf16 amx_int8
"""
AVX2 = {"fpu", "sse2", "avx", "avx2"}


def test_the_cpu_sentence_says_what_the_flags_say_and_no_more():
    flags = cpu_flags(CPUINFO)
    assert {"avx2", "avx512_vnni", "amx_int8"} <= flags and "spectre_v1" not in flags
    rich = int8_sentence(flags)
    assert "have AVX2 and AVX-512 VNNI and AMX-INT8 (/proc/cpuinfo)" in rich
    assert "not measured here" in rich and "none of" not in rich
    assert "AVX-VNNI" not in rich  # a flag it lacks is not claimed
    plain = int8_sentence(AVX2)
    assert "have AVX2 and none of AVX-512 VNNI, AVX-VNNI, AMX-INT8" in plain
    assert "could not be read" in int8_sentence(cpu_flags("processor\t: 0\n"))
