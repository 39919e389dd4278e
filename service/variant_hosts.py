"""Each variant's ModelHost: several bundles served side by side, each reloaded by itself.

Variants that name the same model in the same folder share one host (an A/A test loads its
bundle once). The control's host is `app.state.model_host`, which every route that is not
part of the experiment (/score, /users, /items, /model, /ready) serves from, as it did before
variants; /recommend serves each user from its variant's host (service/routes/recommend.py).
Every host watches its own model's folder and follows POST /admin/reload on its own, so a
new version of one variant's model reaches that variant alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from service.errors import ReloadRefused
from service.reload import ModelHost
from service.served_model import ServedModel
from service.settings import Settings
from service.stores import GuardedStore
from service.variants import Variant


class VariantHosts:
    def __init__(self, settings: Settings):
        shared: dict[tuple[Path, str | None], ModelHost] = {}
        self.by_name: dict[str, ModelHost] = {}
        for variant in settings.split.variants:
            where = (Path(variant.models_dir or settings.models_dir), variant.model)
            if where not in shared:
                shared[where] = ModelHost(where[0], where[1], settings.intra_op_threads(),
                                          settings.ort_cache_dir, settings.two_phase_items,
                                          settings.prune)
            self.by_name[variant.name] = shared[where]
        self.hosts = list(shared.values())
        self.control = self.by_name[settings.split.control.name]
        self._tasks: list[asyncio.Task] = []

    def model(self, variant: Variant) -> ServedModel:
        """The version a variant serves now (NoModel, a 503, while it has none)."""
        return self.by_name[variant.name].require()

    def serving(self, variant: Variant) -> ServedModel | None:
        return self.by_name[variant.name].current

    async def load(self) -> None:
        """Load every host's newest bundle; one refused is logged, and /ready says so for
        the control."""
        for host in self.hosts:
            with contextlib.suppress(ReloadRefused):
                await host.reload()

    async def reload_others(self) -> None:
        """Reload every host but the control's (POST /admin/reload reloads that one itself,
        answering with its result)."""
        for host in self.hosts:
            if host is not self.control:
                with contextlib.suppress(ReloadRefused):  # logged; the old version serves
                    await host.reload()

    def start(self, store: GuardedStore, reload_interval_s: float) -> None:
        """Each host's watcher (if the folder is polled) and follower, as tasks."""
        for host in self.hosts:
            if reload_interval_s > 0:
                self._tasks.append(asyncio.create_task(host.watch(reload_interval_s)))
            self._tasks.append(asyncio.create_task(host.follow(store)))

    async def stop(self) -> None:
        for host in self.hosts:
            host.stop()
        for task in self._tasks:
            task.cancel()  # watchers; followers end by the flag within the store's timeout
            with contextlib.suppress(asyncio.CancelledError):
                await task
