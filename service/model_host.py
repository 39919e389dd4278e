"""The one place the service touches the bundle API (service.bundle), and hot reload.

ServedModel adapts one loaded bundle version to what a request needs: profiles to feature
rows (with the user's id implied), rows to states, states to scores for given items or to a
top n over the whole catalog with per-user exclusions, and catalog lookups. It is immutable
once built, so a request that took `host.current` at its start finishes on that version
whatever a reload does meanwhile.

ModelHost loads the newest version of the model, and on reload builds the next ServedModel
beside the current one, checks it, and swaps one reference; a bundle that fails to load or
to check is refused, logged and remembered, and the old version keeps serving.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import itertools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from service import metrics
from service.bundle import (
    BundleError,
    BundleInputError,
    OnnxScorer,
    find_bundle,
    load_bundle,
)
from service.bundle import format as fmt
from service.errors import InvalidInput, NoModel, ReloadRefused

log = logging.getLogger("service.model")

Features = Mapping[str, Any]  # field -> value or list of values, as clients send them
CHECK_USERS, CHECK_ITEMS = 4, 16  # rows of the self-check run on every bundle before serving
CHECK_TOLERANCE = 1e-3  # onnxruntime against the numpy reference, relative to the score scale


@dataclass(frozen=True)
class EncodedUser:
    idx: np.ndarray  # (W_u,) int32 user-side feature indices
    val: np.ndarray  # (W_u,) float32
    ignored: dict[str, list[str]]  # field -> the request's values the model does not know


class ServedModel:
    """One bundle version, ready to score (see the module doc)."""

    def __init__(self, path: Path, threads: int, ort_cache_dir: Path | None = None):
        self.bundle = load_bundle(path)
        self.scorer = OnnxScorer(self.bundle, threads, spinning=False, cache_dir=ort_cache_dir)
        self.name, self.version = self.bundle.name, self.bundle.version
        self.key = f"{self.name}:{self.version}"  # namespaces cached states in the store
        self.state_size = self.scorer.state_size
        self.n_items = self.bundle.n_items
        # the mapped (N,) str array itself: a list of a million Python strings would be 61 MB
        # in every worker
        self.item_ids: np.ndarray = self.bundle.item_ids
        self.display_names: tuple[str, ...] = tuple(self.bundle.manifest.get("display", []))
        self.user_fields = tuple(f.name for f in self.bundle.fields if f.side != fmt.ITEM_SIDE)
        self.id_field = self._id_field()

    def _id_field(self) -> str | None:
        """The user-side field whose values are the users' ids (MovieLens' `user_id`): a
        profile that does not name it gets the user's own id, as the model was trained."""
        ids = {str(u) for u in self.bundle.array(fmt.USER_IDS).tolist()}
        for field in self.bundle.fields:
            if field.side == fmt.USER_SIDE and field.kind == "categorical" and ids \
                    and ids <= set(field.vocab):
                return field.name
        return None

    # ---- users -----------------------------------------------------------------------------
    def known_user(self, user_id: str) -> int | None:
        """The user's row in the bundle (a user of the training data), or None."""
        return self.bundle.user_position(user_id)

    def bundle_profile(self, position: int) -> dict[str, Any]:
        return self.bundle.profile(position)

    def training_seen(self, position: int) -> np.ndarray:
        return self.bundle.seen_items(position)

    def check_features(self, features: Features, where: str) -> dict[str, list[str]]:
        """Raise InvalidInput (at body.<where>.<field>) for a field the model cannot take;
        return the values it does not know, which it will ignore."""
        try:
            return self.bundle.encode_user(features).ignored
        except BundleInputError as err:
            raise InvalidInput(("body", where, err.field), str(err), "invalid_field") from None

    def encode(self, user_id: str | None, profile: Features,
               overrides: Features | None = None, context: Features | None = None
               ) -> EncodedUser:
        """The feature row of a stored profile, a request's overrides and its context.

        The stored profile may come from another model version: fields this one cannot take
        are left out, not errors (the PUT that stored them was told). Overrides and context
        come from the request: checked strictly, and their unknown values are reported.
        """
        usable = {field: value for field, value in profile.items() if self._fits(field, value)}
        for where, given in (("user", overrides), ("context", context)):
            if given:
                self.check_features(given, where)
        implied = {}
        if user_id is not None and self.id_field and self.id_field not in usable \
                and not (overrides and self.id_field in overrides):
            implied = {self.id_field: user_id}
        row = self.bundle.encode_user({**implied, **usable, **(overrides or {})}, context)
        asked = {*(overrides or ()), *(context or ())}
        return EncodedUser(row.idx, row.val,
                           {f: v for f, v in row.ignored.items() if f in asked})

    def _fits(self, field: str, value: Any) -> bool:
        try:
            self.bundle.encode_user({field: value})
        except BundleInputError:
            return False
        return True

    def states(self, rows: Sequence[EncodedUser]) -> np.ndarray:
        """(B, D) float32 states of encoded users."""
        return self.scorer.user_state(np.stack([r.idx for r in rows]),
                                      np.stack([r.val for r in rows]))

    # ---- scoring ---------------------------------------------------------------------------
    def score(self, state: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """One user's state (D,) and catalog positions (C,) -> scores (C,) float32.

        Given items go through the bundle's numpy scorer, the same decomposed formula over
        the candidates' rows only: model.onnx's `scores` output pays for the whole catalog
        whatever C is (15 ms for 1 item of 100,000 at k = 64, against 0.06 ms here for 100;
        bench/serve.py). The self-check holds the two to each other at every load.
        """
        with metrics.SCORING_SECONDS.labels("score").time():
            return self.scorer.reference.score(state[None],
                                               positions[None].astype(np.int64))[0]

    def top_n(self, states: np.ndarray, n: int, exclude: Sequence[np.ndarray]
              ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per user (states (B, D), exclusions per row): the n best catalog positions, best
        first, with their scores; fewer where fewer items remain."""
        with metrics.SCORING_SECONDS.labels("top_n").time():
            items, scores = self.scorer.top_n(states, n, list(exclude))
        return [(i[i >= 0], s[i >= 0]) for i, s in zip(items, scores)]

    # ---- catalog ---------------------------------------------------------------------------
    def item_positions(self, item_ids: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """Catalog positions of the ids, in order, and the ids the catalog lacks."""
        return self.bundle.item_positions(list(item_ids))

    def display(self, position: int) -> dict[str, str]:
        """An item's display attributes (title, ...) for answers with details=true."""
        return {name: str(self.bundle.array(fmt.ITEM_ATTRIBUTE.format(name))[position])
                for name in self.display_names}

    def title(self, position: int) -> dict[str, str]:
        """{"title": …} where the catalog has titles, else nothing."""
        if "title" not in self.display_names:
            return {}
        return {"title": str(self.bundle.array(fmt.ITEM_ATTRIBUTE.format("title"))[position])}

    def item_details(self, position: int) -> dict[str, Any]:
        return self.bundle.item_details(position)

    def describe(self, values: int) -> dict[str, Any]:
        """What GET /model tells: the model, its catalog, and each field with up to `values`
        of its vocabulary (enough for a client to build a profile form)."""
        manifest = self.bundle.manifest
        fields = [{"name": f.name, "side": f.side, "kind": f.kind, "size": len(f.vocab),
                   "values": [str(v) for v in f.vocab[:values]]} for f in self.bundle.fields]
        return {"name": self.name, "version": self.version, "kind": manifest["model"]["kind"],
                "created_at": manifest.get("created_at"), "items": self.n_items,
                "users": self.bundle.n_users, "user_fields": list(self.user_fields),
                "id_field": self.id_field, "fields": fields,
                "metrics": manifest.get("metrics", {})}

    def user_ids(self, prefix: str, limit: int) -> list[str]:
        """Up to `limit` ids of training users: the first ones, or those starting with
        `prefix` in text order (a bisection over the sorted ids, built on first use)."""
        if not prefix:
            return [str(u) for u in self.bundle.user_ids[:limit].tolist()]
        ids = self._sorted_user_ids
        start = bisect.bisect_left(ids, prefix)
        return list(itertools.takewhile(lambda u: u.startswith(prefix),
                                        ids[start:start + limit]))

    @functools.cached_property
    def _sorted_user_ids(self) -> list[str]:
        return sorted(str(u) for u in self.bundle.user_ids.tolist())

    # ---- the check a bundle passes before it serves ----------------------------------------
    def self_check(self) -> None:
        """Score a few users through onnxruntime and the numpy reference: the two must agree
        and be finite, and the top n must be real catalog positions. Raises BundleError."""
        users = range(min(CHECK_USERS, self.bundle.n_users))
        rows = [EncodedUser(*self.bundle.user_row(u), {}) for u in users] or \
            [self.encode(None, {})]
        states = self.states(rows)
        candidates = np.arange(min(CHECK_ITEMS, self.n_items))[None]
        # one user a call, as requests make them: onnxruntime keeps its largest call's
        # buffers, and at a million items each user of a call holds about 30 MB
        for state in states:
            served = self.scorer.score(state[None], candidates)
            reference = self.scorer.reference.score(state[None], candidates)
            scale = max(1.0, float(np.abs(reference).max()))
            if not np.isfinite(served).all() or \
                    np.abs(served - reference).max() > CHECK_TOLERANCE * scale:
                raise BundleError(self.bundle.onnx_path, "model.onnx disagrees with the "
                                                         "bundle's tables on the self-check")
            items, _ = self.scorer.top_n(state[None], 1, None)
            if not ((items >= 0) & (items < self.n_items)).all():
                raise BundleError(self.bundle.onnx_path, "top-n returned a position outside "
                                                         "the catalog on the self-check")


@dataclass(frozen=True)
class ReloadResult:
    previous: str | None  # version served before
    current: str  # version served now
    changed: bool


class ModelHost:
    """Holds the served model and replaces it (see the module doc)."""

    def __init__(self, models_dir: Path, name: str | None, threads: int,
                 ort_cache_dir: Path | None = None):
        self.models_dir, self.name, self.threads = Path(models_dir), name, threads
        self.ort_cache_dir = ort_cache_dir
        self.current: ServedModel | None = None
        self.last_error: str | None = None  # why the newest bundle is not the one served
        self._refused: set[Path] = set()
        self._lock = asyncio.Lock()

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
            if previous is not None and path == previous.bundle.path:
                return ReloadResult(previous.version, previous.version, False)
            if path in self._refused and not retry_refused:
                return ReloadResult(_version(previous), _version(previous), False)
            started = time.perf_counter()
            try:
                model = await asyncio.to_thread(self._build, path)
            except Exception as err:  # a broken bundle can fail anywhere in loading; refuse it
                return self._refuse(path, _describe(err), previous)
            self.current, self.last_error = model, None
            self._refused.discard(path)
            metrics.model_served(model.name, model.version,
                                 (previous.name, previous.version) if previous else None)
            if previous is not None:
                metrics.MODEL_RELOADS.labels("loaded").inc()
            log.info("serving model %s", model.key, extra={
                "previous": previous.key if previous else None,
                "load_seconds": round(time.perf_counter() - started, 3)})
            return ReloadResult(_version(previous), model.version, True)

    def _build(self, path: Path) -> ServedModel:
        model = ServedModel(path, self.threads, self.ort_cache_dir)
        model.self_check()
        return model

    def _refuse(self, path: Path | None, why: str, previous: ServedModel | None
                ) -> ReloadResult:
        if why != self.last_error:  # the watcher meets the same problem every poll: log it once
            log.error("bundle refused, %s", "still serving " + previous.key if previous
                      else "nothing to serve", extra={"problem": why})
        self.last_error = why
        if path is not None:
            self._refused.add(path)
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


def _describe(err: Exception) -> str:
    return str(err) if isinstance(err, BundleError) else f"{type(err).__name__}: {err}"


def _version(model: ServedModel | None) -> str | None:
    return model.version if model else None
