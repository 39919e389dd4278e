"""Several single-worker `python -m service` replicas on one Redis, as a deployment runs them."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support.ports import free_port
from tests.support.processes import wait_until_ready

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def running_replicas(models_dir: Path, redis_url: str, prefix: str, logs: Path,
                     count: int = 3, env: Mapping[str, str] | None = None
                     ) -> Iterator[list[str]]:
    """Base URLs of `count` replicas serving `models_dir` on one Redis under `prefix`, each
    ready (a model served) before this yields; their output goes to `logs`/replica-<i>.log.
    `env` adds or overrides GMLREC_* settings. Each replica is killed on the way out."""
    processes, bases = [], []
    try:
        for replica in range(count):
            port = free_port()
            full = {**os.environ, "GMLREC_MODELS_DIR": str(models_dir),
                    "GMLREC_PORT": str(port), "GMLREC_REDIS_URL": redis_url,
                    "GMLREC_REDIS_PREFIX": prefix, "GMLREC_REDIS_TIMEOUT_S": "2",
                    "GMLREC_ORT_THREADS": "1", "GMLREC_LOG_LEVEL": "warning", **(env or {})}
            full.pop("PROMETHEUS_MULTIPROC_DIR", None)
            with open(logs / f"replica-{replica}.log", "w") as log:
                processes.append(subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT,
                                                  env=full, stdout=log,
                                                  stderr=subprocess.STDOUT))
            bases.append(f"http://127.0.0.1:{port}")
        for base, process in zip(bases, processes):
            wait_until_ready(base, process, within_s=120)
        yield bases
    finally:
        for process in processes:
            process.kill()
            process.wait(10)
