"""Every GMLREC_* setting, read once from the environment and held to every safety rule.

docs/configuration.md lists each variable; defaults are chosen for one small machine. The
safety rules live here, in the settings' own validation, so that no entry point can skip
them: `python -m service`, `uvicorn service.app:app` (the app reads its settings at import)
and the images, which run one of the two, all refuse the same configurations, each with one
line naming the variable (docs/operations.md, Secure):

    API keys that are malformed or cannot be read (GMLREC_API_KEYS, GMLREC_API_KEYS_FILE)
    GMLREC_AUTH=none with keys                  a contradiction
    a non-loopback GMLREC_HOST without keys     anyone who reaches the port could write,
                                                unless GMLREC_AUTH=none says so on purpose
    GMLREC_WORKERS > 1 without GMLREC_REDIS_URL each worker would keep a store of its own
    a GMLREC_REDIS_PASSWORD_FILE that cannot be read
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from bundle.two_phase import TWO_PHASE_FROM_ITEMS
from service.keys import KeyRing, KeysError
from service.loopback import is_loopback
from service.variants import Split, VariantsError, default_split, parse


class PasswordFileError(ValueError):
    """GMLREC_REDIS_PASSWORD_FILE cannot be read; the message holds no secret."""


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

    # who may call what (service/keys.py, service/access.py): `scope:key` pairs, inline or one
    # a line in a file; without keys only loopback is served, unless auth is "none"
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
    # when a lone user is ranked by the bundle's block search (bundle/block_ranker.py):
    # auto where measuring it at load found that it pays, per top-n shape; on: always; off
    prune: Literal["auto", "on", "off"] = "auto"
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
    # a user id with no profile (neither PUT nor the training data's) on /recommend and
    # /score: `cold` answers it from an empty profile, the model's item-side terms alone (a
    # visitor's first page is a list, not an error); `reject` answers 404, for clients that
    # must PUT every user first (docs/configuration.md)
    unknown_users: Literal["cold", "reject"] = "cold"

    # the catalog overlay (service/overlay_feed.py): each worker asks the store for its changes
    # this often, so every replica serves a change within a second; the store keeps at most
    # this many item records, one per id PUT /items/{id} ever took (a new id beyond: 409; 0:
    # items are only retired)
    catalog_poll_s: float = Field(0.25, gt=0, le=0.5)
    catalog_max_added: int = Field(1_000_000, ge=0)

    # the event log (events/, docs/store.md, Events): every acknowledged interactions batch is
    # appended in the same atomic step that moves the user's state, to a per-user stream on
    # Redis, or without Redis to append-only segments under events_dir (a path relative to the
    # working directory, created at the first append); false: no log (nothing to retrain on)
    events_log: bool = True
    events_dir: Path = Path("event-log")
    # the online experiment (service/variants.py): the variants as JSON, inline or in a file
    # (unset: one variant, `default`, with GMLREC_MODEL); the experiment's name, which salts
    # the split of users and names its counters in the store; how long an answer can be
    # credited with an interaction that names no recommendation_id, and how many answers
    # per user are kept for that (service/experiment.py)
    variants: str | None = None
    variants_file: Path | None = None
    experiment: str = Field("default", pattern=r"^[A-Za-z0-9._-]{1,64}$")
    attribution_window: int = Field(86_400, gt=0, le=30 * 86_400)  # seconds
    attribution_answers: int = Field(50, ge=1, le=1000)

    # read from their files while the settings are checked, once
    _keys: KeyRing = PrivateAttr(KeyRing())
    _redis_password: SecretStr | None = PrivateAttr(None)
    _split: Split | None = PrivateAttr(None)

    @field_validator("ort_cache_dir", "api_keys_file", "redis_password_file", "variants_file",
                     "variants", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_level", "unknown_users", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _safe(self) -> Settings:
        """The start-up safety rules (the module doc): the first one broken is the error."""
        try:
            self._keys = KeyRing.read(
                self.api_keys.get_secret_value() if self.api_keys is not None else None,
                self.api_keys_file)
            self._redis_password = _read_password(self.redis_password_file)
        except (KeysError, PasswordFileError) as err:
            raise PydanticCustomError("unusable_secret", "{problem}",
                                      {"problem": str(err)}) from None
        self._split = self._read_split()
        if problem := self._unsafe():
            raise PydanticCustomError("unsafe_settings", "{problem}", {"problem": problem})
        return self

    def _unsafe(self) -> str | None:
        """Why these settings must not start a service, or None."""
        if self.auth == "none" and self.keys.enabled:
            return "GMLREC_AUTH=none but API keys are set: drop one or the other"
        if self.loopback_only and not is_loopback(self.host):
            return (f"GMLREC_HOST={self.host} without API keys would let anyone who reaches "
                    "the port write profiles and reload models; set GMLREC_API_KEYS_FILE "
                    "(python -m service keys new --scope admin makes a key), or "
                    "GMLREC_AUTH=none to serve without keys on purpose")
        if self.workers > 1 and not self.redis_url:
            return ("GMLREC_WORKERS > 1 needs GMLREC_REDIS_URL (each worker would keep its own "
                    "in-process store, and a PUT on one would be missed by the others)")
        return None

    def _read_split(self) -> Split:
        """The variants of GMLREC_VARIANTS or GMLREC_VARIANTS_FILE (not both), or the one
        default variant; a refusal names the variable."""
        if self.variants is not None and self.variants_file is not None:
            raise PydanticCustomError("unusable_variants", "GMLREC_VARIANTS: set it or "
                                      "GMLREC_VARIANTS_FILE, not both", {})
        if self.variants is None and self.variants_file is None:
            return default_split(self.model, self.models_dir)
        where = "GMLREC_VARIANTS" if self.variants is not None else "GMLREC_VARIANTS_FILE"
        try:
            text = self.variants if self.variants is not None else \
                Path(str(self.variants_file)).read_text(encoding="utf-8")
            return parse(text, self.model, self.models_dir)
        except (OSError, UnicodeDecodeError, VariantsError) as err:
            problem = err if isinstance(err, VariantsError) else type(err).__name__
            raise PydanticCustomError("unusable_variants", "{where}: {problem}",
                                      {"where": where, "problem": str(problem)}) from None

    @property
    def split(self) -> Split:
        """The experiment's variants (service/variants.py)."""
        assert self._split is not None  # read while the settings were checked
        return self._split

    @property
    def keys(self) -> KeyRing:
        """The API keys of GMLREC_API_KEYS and GMLREC_API_KEYS_FILE, as digests."""
        return self._keys

    @property
    def loopback_only(self) -> bool:
        """Whether the service may answer this machine only (service/loopback.py): it has no
        keys, and GMLREC_AUTH=none does not open it on purpose."""
        return not self.keys.enabled and self.auth != "none"

    @property
    def redis_password(self) -> str | None:
        """The password in GMLREC_REDIS_PASSWORD_FILE (its first line), if one is set."""
        return self._redis_password.get_secret_value() if self._redis_password else None

    def intra_op_threads(self) -> int:
        """Explicit onnxruntime threads: never more than this worker's share of the cores."""
        if self.ort_threads is not None:
            return self.ort_threads
        return max(1, len(os.sched_getaffinity(0)) // self.workers)


def _read_password(file: Path | None) -> SecretStr | None:
    if file is None:
        return None
    try:
        return SecretStr(file.read_text(encoding="utf-8").splitlines()[0].strip())
    except (OSError, UnicodeDecodeError, IndexError) as err:
        raise PasswordFileError(f"GMLREC_REDIS_PASSWORD_FILE: cannot read a password from "
                                f"{file}: {type(err).__name__}") from None


def refusal(err: ValidationError) -> str:
    """The first problem of refused settings as one line that names its variable."""
    first = err.errors()[0]
    where = f"GMLREC_{str(first['loc'][0]).upper()}: " if first["loc"] else ""
    return where + first["msg"]


def settings_or_exit(program: str) -> Settings:
    """The settings of the environment, for an entry point: refused ones are one line on
    stderr, `<program>: <problem>`, and exit status 2, before anything starts."""
    try:
        return Settings()
    except ValidationError as err:
        sys.stderr.write(f"{program}: {refusal(err)}\n")
        raise SystemExit(2) from None
