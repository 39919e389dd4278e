"""GMLREC_* settings, and `python -m service` refusing bad ones in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings

ROOT = Path(__file__).parents[2]


def test_settings_come_from_gmlrec_env(monkeypatch):
    monkeypatch.setenv("GMLREC_MODELS_DIR", "/srv/models")
    monkeypatch.setenv("GMLREC_MODEL", "gmlfm")
    monkeypatch.setenv("GMLREC_REDIS_URL", "redis://cache:6379/0")
    monkeypatch.setenv("GMLREC_CACHE_TTL_S", "600")
    monkeypatch.setenv("GMLREC_WORKERS", "3")
    monkeypatch.setenv("GMLREC_LOG_LEVEL", "WARNING")
    s = Settings()
    assert (s.models_dir, s.model, s.redis_url, s.cache_ttl_s, s.workers, s.log_level) == (
        Path("/srv/models"), "gmlfm", "redis://cache:6379/0", 600, 3, "warning")


def test_onnxruntime_threads_share_the_cores_among_workers_unless_given():
    cores = len(os.sched_getaffinity(0))
    assert Settings(workers=1).intra_op_threads() == cores
    assert Settings(workers=cores * 2).intra_op_threads() == 1  # never 0
    assert Settings(workers=cores * 2, ort_threads=3).intra_op_threads() == 3


@pytest.mark.parametrize(("name", "value"), [("GMLREC_PORT", "70000"), ("GMLREC_WORKERS", "0"),
                                             ("GMLREC_CACHE_TTL_S", "soon"),
                                             ("GMLREC_LOG_LEVEL", "loud")])
def test_bad_values_are_refused(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def run_service(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GMLREC_")}
    return subprocess.run([sys.executable, "-m", "service"], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("env", "message"), [
    ({"GMLREC_PORT": "http"}, "GMLREC_PORT"),
    ({"GMLREC_WORKERS": "4"}, "GMLREC_REDIS_URL"),
])
def test_python_m_service_refuses_bad_settings_in_one_line(env, message):
    done = run_service(**env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr
