"""Every knob of the service, read once from `GMLREC_*` environment variables.

The names of CONTRACT.md ("Environment") are the public ones; the rest have defaults chosen
for one small machine and are listed in the README's Serving section.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bundle.two_phase import TWO_PHASE_FROM_ITEMS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GMLREC_", extra="ignore", frozen=True)

    # the model: the newest version of `model` (or of the only model) under models_dir
    models_dir: Path = Path("models")
    model: str | None = None
    reload_interval_s: float = Field(5.0, ge=0)  # poll models_dir this often; 0 = never

    # the user store: unset -> in-process; redis:// or rediss:// -> Redis; a URL whose scheme
    # is redis+cluster:// (or rediss+cluster://) -> Redis Cluster
    redis_url: str | None = None
    redis_prefix: str = Field("gmlrec", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    # Redis' password, read from a file (a Docker secret), so it is in neither the URL, the
    # environment nor argv
    redis_password_file: Path | None = None
    cache_ttl_s: int = Field(86_400, gt=0)  # state blobs expire this long after each write
    # short timeouts, no retries: a slow Redis costs a request this much, once, then the
    # store is skipped for redis_cooldown_s while requests are served from the bundle
    redis_timeout_s: float = Field(0.25, gt=0)
    # waiting for a free pooled connection is queueing in this process, not a Redis fault:
    # under a burst it can take longer than one command may
    redis_pool_timeout_s: float = Field(2.0, gt=0)
    redis_cooldown_s: float = Field(1.0, ge=0)
    redis_max_connections: int = Field(64, ge=1)

    # who may call what (service/access.py): `scope:key` pairs, inline or one a line in a
    # file; without keys only a loopback host is served, unless auth is "none"
    api_keys: SecretStr | None = None
    api_keys_file: Path | None = None
    auth: Literal["keys", "none"] = "keys"

    # the HTTP server (python -m service)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1, le=64)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # onnxruntime intra-op threads per worker; unset -> the cores divided among the workers
    ort_threads: int | None = Field(None, ge=1, le=64)
    # where large bundles' prepacked onnxruntime weights are saved once and mapped by every
    # worker (bundle/prepacked.py: a folder of this user's, mode 0700, each entry checked
    # before use); empty -> each worker packs a private copy
    ort_cache_dir: Path | None = Path(tempfile.gettempdir()) / f"gmlrec-ort-cache-{os.getuid()}"
    # requests doing work at once per worker; the rest queue before touching the store, so
    # a burst cannot keep the event loop busy past the store's timeouts (which would read as
    # a Redis fault)
    max_active: int = Field(16, ge=1)
    # how /recommend runs its whole-catalog top n (service/ranking.py; bench/serve.py)
    ranking: Literal["inline", "thread", "batch"] = "batch"
    # catalogs of at least this many items rank a lone user through the bundle's
    # two_phase.onnx where it has one (int8 first pass, the float32 answer to the bit;
    # bundle/two_phase.py); 0: every catalog; above the catalog's size: model.onnx alone
    two_phase_items: int = Field(TWO_PHASE_FROM_ITEMS, ge=0)
    graceful_timeout_s: float = Field(10.0, ge=0)  # in-flight requests get this long at stop

    # request limits: anything beyond is a 413 or a 422 naming the limit
    max_body_bytes: int = Field(1 << 20, ge=1024)
    max_n: int = Field(1000, ge=1)  # items per /recommend answer
    max_score_items: int = Field(1000, ge=1)  # item ids per /score or interactions body
    # recorded interactions kept per user, oldest dropped first: the history, and the items
    # exclude_seen leaves out beside the training data's
    history_cap: int = Field(1000, ge=1, le=100_000)
    # growth: users the in-process store holds (least recently used dropped beyond); a TTL
    # for profiles and histories (0: none), restarted by each write
    memory_users: int = Field(100_000, ge=1)
    profile_ttl_s: int = Field(0, ge=0)

    @field_validator("ort_cache_dir", "api_keys_file", "redis_password_file", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    def intra_op_threads(self) -> int:
        """Explicit onnxruntime threads: never more than this worker's share of the cores."""
        if self.ort_threads is not None:
            return self.ort_threads
        return max(1, len(os.sched_getaffinity(0)) // self.workers)
