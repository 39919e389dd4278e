"""Hot reload: a new bundle version is loaded beside the old one and swapped in under load,
with no failed request and no answer mixing versions; a broken bundle is refused."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.service.api.conftest import serving, settings_for
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.anyio
REQUEST = {"user_id": "7", "item_ids": ["1", "20", "77", "150"]}
NEWER = "29991231T235959Z-00000000"  # sorts after any version exported today


class Answer(NamedTuple):
    """One answer seen under load, with when its request was sent."""

    worker: int
    sent: float
    status: int
    version: str
    answer: object


def place(bundle: Path, models_dir: Path, version: str = NEWER) -> Path:
    """Move a copy of a bundle into a models folder the way export does: write it under a
    hidden name, then rename it into place in one step."""
    tmp = models_dir / "rec" / f".incoming-{version}"
    shutil.copytree(bundle, tmp)
    target = tmp.with_name(version)
    tmp.rename(target)
    return target


async def answers_of(trained, store) -> dict:
    """/score and /recommend answers of a bundle served alone."""
    async with serving(settings_for(trained.models_dir, **store)) as client:
        score = (await client.post("/score", json=REQUEST)).json()
        top = (await client.get("/recommend/7", params={"n": 5})).json()
        return {"score": score["scores"], "top": top["items"]}


async def test_reload_under_load_never_fails_or_mixes_versions(gmlfm, gmlfm_next, store,
                                                               models_copy):
    expected = {gmlfm.version: await answers_of(gmlfm, store),
                gmlfm_next.version: await answers_of(gmlfm_next, store)}
    assert expected[gmlfm.version] != expected[gmlfm_next.version]
    seen: list[Answer] = []
    running = True

    async with serving(settings_for(models_copy, **store)) as client:
        async def load(worker: int) -> None:
            while running:
                await asyncio.sleep(0)  # with the in-process store a request never waits
                sent = time.monotonic()
                if worker % 2:
                    r = await client.post("/score", json=REQUEST)
                    answer = r.json()["scores"]
                else:
                    r = await client.get("/recommend/7", params={"n": 5})
                    answer = r.json()["items"]
                seen.append(Answer(worker, sent, r.status_code, r.json()["model_version"],
                                   answer))

        tasks = [asyncio.create_task(load(w)) for w in range(8)]
        await wait_until_async(lambda: len(seen) >= 40, 30, "40 answers before the reload")
        place(gmlfm_next.bundle, models_copy)
        r = await client.post("/admin/reload")
        swapped = time.monotonic()
        assert r.status_code == 200, r.text
        assert r.json() == {"model_version": gmlfm_next.version, "changed": True,
                            "previous_version": gmlfm.version, "others_told": True}
        await wait_until_async(lambda: all(
            sum(a.worker == w and a.sent > swapped for a in seen) >= 2 for w in range(8)),
            30, "every worker sending twice after the reload")
        running = False
        await asyncio.gather(*tasks)

    assert {a.status for a in seen} == {200}
    assert {a.version for a in seen} == {gmlfm.version, gmlfm_next.version}
    late_old = [a for a in seen if a.sent > swapped and a.version == gmlfm.version]
    assert not late_old, "a request sent after the reload answered was served the old version"
    for worker in range(8):
        versions = [a.version for a in seen if a.worker == worker]
        assert versions == sorted(versions, key=[gmlfm.version, gmlfm_next.version].index)
    for a in seen:
        assert a.answer in (expected[a.version]["score"], expected[a.version]["top"])


async def test_the_watcher_finds_a_new_version(gmlfm, gmlfm_next, models_copy):
    async with serving(settings_for(models_copy, reload_interval_s=0.05)) as client:
        assert (await client.get("/model")).json()["model_version"] == gmlfm.version
        place(gmlfm_next.bundle, models_copy)
        deadline = time.monotonic() + 10
        while (await client.get("/model")).json()["model_version"] != gmlfm_next.version:
            assert time.monotonic() < deadline, "the new version was never served"
            await asyncio.sleep(0.05)
        r = await client.post("/admin/reload")
        assert r.json()["changed"] is False


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "delete"])
async def test_a_broken_bundle_is_refused_and_the_old_one_serves_on(gmlfm, gmlfm_next,
                                                                    models_copy, damage,
                                                                    caplog):
    async with serving(settings_for(models_copy)) as client:
        before = (await client.post("/score", json=REQUEST)).json()
        broken = place(gmlfm_next.bundle, models_copy)
        culprit = broken / "items" / "const.npy"
        if damage == "delete":
            culprit.unlink()
        else:
            data = bytearray(culprit.read_bytes())
            if damage == "truncate":
                del data[-8:]
            else:
                data[-3] ^= 0xFF
            culprit.write_bytes(bytes(data))
        with caplog.at_level(logging.ERROR, logger="service.model"):
            r = await client.post("/admin/reload")
        assert r.status_code == 409
        assert "items/const.npy" in r.json()["detail"]
        assert r.json()["serving"] == gmlfm.version
        assert any("items/const.npy" in str(getattr(rec, "problem", ""))
                   for rec in caplog.records)
        after = await client.post("/score", json=REQUEST)
        assert after.json() == before
        assert (await client.get("/ready")).json()["status"] == "ready"


async def test_states_of_one_version_are_never_read_by_another(gmlfm, gmlfm_next,
                                                               models_copy):
    async with serving(settings_for(models_copy)) as client:
        await client.get("/recommend/7")
        place(gmlfm_next.bundle, models_copy)
        await client.post("/admin/reload")
        await client.get("/recommend/7")
        store = client.app.state.store.store
        keys = [k for k in store._values if "{user:7}:state" in k]
        assert sorted(keys) == sorted(store.keys.state("7", f"rec:{v}")
                                      for v in (gmlfm.version, gmlfm_next.version))


async def test_no_model_is_not_ready_and_503(tmp_path):
    async with serving(settings_for(tmp_path / "empty")) as client:
        r = await client.get("/ready")
        assert r.status_code == 503 and r.json()["status"] == "not_ready"
        r = await client.get("/recommend/7")
        assert r.status_code == 503 and "no model loaded" in r.json()["detail"]
        assert (await client.get("/health")).status_code == 200


async def test_a_version_refused_while_still_being_copied_is_served_once_whole(
        gmlfm, gmlfm_next, models_copy):
    """A copy into the models folder file by file (not export's rename): the watcher meets
    it half-written and refuses it, then tries again as its files change, and serves it
    once whole, with no admin call."""
    async with serving(settings_for(models_copy, reload_interval_s=0.05)) as client:
        target = models_copy / "rec" / NEWER  # the newest by name, whatever the exports
        files = sorted((p for p in gmlfm_next.bundle.rglob("*") if p.is_file()),
                       key=lambda p: p.name != "manifest.json")  # the manifest lands first
        half = len(files) // 2
        for file in files[:half]:
            (target / file.relative_to(gmlfm_next.bundle)).parent.mkdir(parents=True,
                                                                          exist_ok=True)
            shutil.copy2(file, target / file.relative_to(gmlfm_next.bundle))
        deadline = time.monotonic() + 10
        while (await client.get("/ready")).json().get("detail") is None and \
                client.app.state.model_host.last_error is None:
            assert time.monotonic() < deadline, "the half-copied version was never met"
            await asyncio.sleep(0.05)
        assert (await client.get("/model")).json()["model_version"] == gmlfm.version
        for file in files[half:]:
            (target / file.relative_to(gmlfm_next.bundle)).parent.mkdir(parents=True,
                                                                          exist_ok=True)
            shutil.copy2(file, target / file.relative_to(gmlfm_next.bundle))
        deadline = time.monotonic() + 10
        while (await client.get("/model")).json()["model_version"] != gmlfm_next.version:
            assert time.monotonic() < deadline, "the completed version was never served"
            await asyncio.sleep(0.05)
