"""GMLREC_* settings: read from the environment, every start-up safety rule in their own
validation, and `python -m service` refusing bad or unsafe ones in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.settings import Settings, refusal

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
    shared = {"redis_url": "redis://cache:6379/0"}  # several workers need a shared store
    assert Settings(workers=1).intra_op_threads() == cores
    assert Settings(workers=cores * 2, **shared).intra_op_threads() == 1  # never 0
    assert Settings(workers=cores * 2, ort_threads=3, **shared).intra_op_threads() == 3


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


KEY = "admin:0123456789abcdefghij"
UNSAFE = [  # (settings, what the one line says): each safety rule broken once
    ({"api_keys": "read:short"}, "GMLREC_API_KEYS: entry 1: a key needs at least 16"),
    ({"api_keys": "root:0123456789abcdefghij"}, "GMLREC_API_KEYS: entry 1 is not scope:key"),
    ({"api_keys_file": "/no/such/keys"}, "GMLREC_API_KEYS_FILE: cannot read /no/such/keys"),
    ({"auth": "none", "api_keys": KEY}, "GMLREC_AUTH=none but API keys are set"),
    ({"host": "0.0.0.0"}, "GMLREC_HOST=0.0.0.0 without API keys"),
    ({"host": "my-laptop.example"}, "GMLREC_HOST=my-laptop.example without API keys"),
    ({"workers": "4"}, "GMLREC_WORKERS > 1 needs GMLREC_REDIS_URL"),
    ({"redis_url": "redis://cache:6379/0", "redis_password_file": "/no/such/password"},
     "GMLREC_REDIS_PASSWORD_FILE: cannot read a password from /no/such/password"),
]


@pytest.mark.parametrize(("options", "message"), UNSAFE)
def test_each_safety_rule_is_part_of_the_settings_validation(options, message):
    with pytest.raises(ValidationError) as err:
        Settings(**options)
    assert refusal(err.value).startswith(message), refusal(err.value)
    assert "0123456789abcdefghij" not in refusal(err.value)  # never a key


@pytest.mark.parametrize("options", [{}, {"host": "::1"}, {"host": "localhost"},
                                     {"host": "0.0.0.0", "auth": "none"},
                                     {"host": "0.0.0.0", "api_keys": KEY},
                                     {"workers": "4", "redis_url": "redis://cache:6379/0"}])
def test_safe_settings_pass(options):
    Settings(**options)


def test_the_keys_and_the_redis_password_are_read_once_with_the_settings(tmp_path):
    (tmp_path / "keys").write_text(f"{KEY}\n")
    (tmp_path / "password").write_text("s3cret\nignored\n")
    settings = Settings(api_keys_file=tmp_path / "keys", redis_url="redis://cache:6379/0",
                        redis_password_file=tmp_path / "password")
    assert settings.keys.scope_of(KEY.partition(":")[2]) is not None
    assert settings.redis_password == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(("env", "message"), [
    ({"GMLREC_PORT": "http"}, "GMLREC_PORT"),
    *[({f"GMLREC_{k.upper()}": v for k, v in options.items()}, message)
      for options, message in UNSAFE],
])
def test_python_m_service_refuses_bad_settings_in_one_line(env, message):
    done = run_service(**env)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert done.stderr.startswith("python -m service: ")
