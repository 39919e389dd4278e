"""Hot reload: which bundle version serves, and replacing it without dropping a request.

ModelHost loads the newest version of the model, and on reload builds the next ServedModel
beside the current one, self-checks it, and swaps one reference; a bundle that fails to load
or to check is refused, logged and remembered, and the old version keeps serving. `watch`
polls the models folder so that every worker finds a new version by itself.

A refused version is tried again: at once when its files change (a copy that was still under
way when the watcher met it, now further on), else after a backoff that doubles from
RETRY_FIRST_S up to RETRY_MAX_S, so a version copied into place file by file is served once
it is whole, and a truly broken one costs a retry a few minutes, not a load every poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from bundle import BundleError, find_bundle
from service import metrics
from service.errors import NoModel, ReloadRefused
from service.self_check import self_check
from service.served_model import ServedModel
from service.stores import GuardedStore, StoreUnavailable

log = logging.getLogger("service.model")
RETRY_FIRST_S, RETRY_MAX_S = 1.0, 300.0  # the watcher's backoff for a refused version
FOLLOW_EVERY_S = 0.5  # how often a worker asks the store whether an admin asked for a reload


@dataclass(frozen=True)
class Refusal:
    """A refused version: what its files looked like, and when the watcher tries it again."""

    files: tuple[tuple[str, int, int], ...]  # (path, size, mtime) of each
    attempts: int
    retry_at: float

    @staticmethod
    def of(path: Path, attempts: int) -> Refusal:
        wait = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** (attempts - 1))
        return Refusal(files_of(path), attempts, time.monotonic() + wait)

    def due(self, path: Path) -> bool:
        return time.monotonic() >= self.retry_at or files_of(path) != self.files


def files_of(path: Path) -> tuple[tuple[str, int, int], ...]:
    """What a version folder holds now, cheaply: each file's name, size and mtime."""
    found = []
    with contextlib.suppress(OSError):
        for file in sorted(path.rglob("*")):
            with contextlib.suppress(OSError):
                info = file.stat()
                found.append((str(file.relative_to(path)), info.st_size, info.st_mtime_ns))
    return tuple(found)


@dataclass(frozen=True)
class ReloadResult:
    previous: str | None  # version served before
    current: str  # version served now
    changed: bool


class ModelHost:
    """Holds the served model and replaces it (see the module doc)."""

    def __init__(self, models_dir: Path, name: str | None, threads: int,
                 ort_cache_dir: Path | None, two_phase_items: int, prune: str = "off"):
        self.models_dir, self.name, self.threads = Path(models_dir), name, threads
        self.ort_cache_dir, self.two_phase_items = ort_cache_dir, two_phase_items
        self.prune = prune
        self.current: ServedModel | None = None
        self.last_error: str | None = None  # why the newest bundle is not the one served
        self._refused: dict[Path, Refusal] = {}
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()

    def require(self) -> ServedModel:
        model = self.current
        if model is None:
            raise NoModel(self.last_error or "still loading")
        return model

    async def reload(self, retry_refused: bool = True) -> ReloadResult:
        """Serve the newest bundle if it is not the one served; refuse a broken one."""
        async with self._lock:
            previous = self.current
            try:
                path = find_bundle(self.models_dir, self.name)
            except (BundleError, OSError) as err:
                return self._refuse(None, str(err), previous)
            if previous is not None and path == previous.path:
                return ReloadResult(previous.version, previous.version, False)
            refusal = self._refused.get(path)
            if refusal is not None and not retry_refused and not refusal.due(path):
                if previous is None:  # refused, not tried again yet, and nothing serves
                    raise ReloadRefused(f"bundle refused: {self.last_error}", serving=None)
                return ReloadResult(previous.version, previous.version, False)
            started = time.perf_counter()
            try:
                model = await asyncio.to_thread(self._build, path)
            except Exception as err:  # a broken bundle can fail anywhere in loading; refuse it
                return self._refuse(path, _describe(err), previous)
            self.current, self.last_error = model, None
            self._refused.pop(path, None)
            metrics.model_served(model.name, model.version,
                                 (previous.name, previous.version) if previous else None)
            if previous is not None:
                metrics.MODEL_RELOADS.labels("loaded").inc()
            log.info("serving model %s", model.key, extra={
                "previous": previous.key if previous else None,
                "load_seconds": round(time.perf_counter() - started, 3)})
            return ReloadResult(_version(previous), model.version, True)

    def _build(self, path: Path) -> ServedModel:
        model = ServedModel(path, self.threads, self.ort_cache_dir,
                            two_phase_items=self.two_phase_items, prune=self.prune)
        self_check(model)
        return model

    def _refuse(self, path: Path | None, why: str, previous: ServedModel | None
                ) -> ReloadResult:
        if why != self.last_error:  # the watcher meets the same problem every poll: log it once
            log.error("bundle refused, %s", "still serving " + previous.key if previous
                      else "nothing to serve", extra={"problem": why})
        self.last_error = why
        if path is not None:
            before = self._refused.get(path)
            self._refused[path] = Refusal.of(path, before.attempts + 1 if before else 1)
            metrics.MODEL_RELOADS.labels("refused").inc()
        if previous is None or path is not None:
            raise ReloadRefused(f"bundle refused: {why}", serving=_version(previous))
        return ReloadResult(previous.version, previous.version, False)

    async def watch(self, interval_s: float) -> None:
        """Poll the models folder forever (a cheap listing); load what is new."""
        while True:
            await asyncio.sleep(interval_s)
            with contextlib.suppress(ReloadRefused):  # logged by _refuse; the old one serves
                await self.reload(retry_refused=False)

    async def follow(self, store: GuardedStore, every_s: float = FOLLOW_EVERY_S) -> None:
        """Reload whenever POST /admin/reload was called on another worker or replica (the
        store's reload generation moved), whether or not the folder is polled; until
        `stop`. It ends by a flag, not by cancellation: on Python 3.11 a cancel that meets
        the store client's own timeout can be swallowed (asyncio.timeout), and the
        shutdown would wait on it for ever."""
        seen = None
        while not self._stopping.is_set():
            with contextlib.suppress(StoreUnavailable):
                generation = await store.reload_generation()
                if seen is not None and generation != seen:
                    with contextlib.suppress(ReloadRefused):
                        await self.reload()
                seen = generation
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), every_s)

    def stop(self) -> None:
        """End `follow` (within the store's timeout)."""
        self._stopping.set()


def _describe(err: Exception) -> str:
    return str(err) if isinstance(err, BundleError) else f"{type(err).__name__}: {err}"


def _version(model: ServedModel | None) -> str | None:
    return model.version if model else None
