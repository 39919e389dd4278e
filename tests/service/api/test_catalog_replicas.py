"""Three `python -m service` replicas over one Redis take catalog writes through any of them:
a thousand items added and a hundred retired while reads run, and every replica serves the
same catalog, every acknowledged write in it, within a second of the last one. Once settled,
every replica answers the same top n, for training users and an unknown one, with and
without a filter, and that answer is the brute-force ranking of the union (bundle items less
the retired, then the added items in the order the store first took them), retired items in
none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from bundle.two_phase import TWO_PHASE_FROM_ITEMS
from service.overlay import AddedItem
from service.served_model import ServedModel
from service.stores import Keys
from tests.service.api.conftest import REDIS_URL, redis_is_up
from tests.service.api.reference import assert_same_ranking
from tests.service.api.test_union_ranking import (
    RELATIVE,
    Union,
    brute_force,
    check_ties_and_retired,
    overlay,
    ranked,
    seen_of,
    state_of,
    union_of,
    unknown,
)
from tests.support.replicas import running_replicas

pytestmark = pytest.mark.anyio
ADDED, RETIRED, AT_ONCE = 1000, 100, 16
REPLICAS = 3
TOP_N = 20
CATEGORIES = 5  # the synthetic catalog's item field (conftest.SYNTHETIC)


@contextlib.contextmanager
def replicas(models_dir: Path, prefix: str, logs: Path) -> Iterator[list[str]]:
    """Base URLs of REPLICAS single-worker replicas sharing the test Redis."""
    if not redis_is_up():
        pytest.skip(f"no Redis at {REDIS_URL}")
    with running_replicas(models_dir, REDIS_URL, prefix, logs, REPLICAS) as bases:
        yield bases


def catalog_version(metrics_text: str) -> float | None:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "gmlrec_catalog_version":
            return family.samples[0].value
    return None


def features_of(item_id: str) -> dict[str, str]:
    """What the test PUTs for an added item `new-<n>`: one of the catalog's categories."""
    return {"category": str(int(item_id.removeprefix("new-")) % CATEGORIES)}


async def listing(http: httpx.AsyncClient, base: str) -> list[tuple[str, str]]:
    """The whole catalog one replica serves, page by page."""
    listed, params = [], {"limit": 1000}
    while True:
        page = (await http.get(f"{base}/items", params=params)).json()
        listed += [(i["item_id"], i["source"]) for i in page["items"]]
        if page["next_cursor"] is None:
            return listed
        params["cursor"] = page["next_cursor"]


async def test_three_replicas_serve_every_acknowledged_change_within_a_second(
        gmlfm, redis_prefix, tmp_path):
    prefix = f"{redis_prefix}-catalog"
    with replicas(gmlfm.models_dir, prefix, tmp_path) as bases:
        async with httpx.AsyncClient(timeout=30) as http:
            bundle = [i for i, _ in await listing(http, bases[0])]
            targets = itertools.cycle(bases)
            # the retired: half added ones (acknowledged before: at most AT_ONCE writes are in
            # flight), half the bundle's
            writes = [("PUT", f"new-{n}") for n in range(ADDED)] + \
                [("DELETE", f"new-{n}") for n in range(0, 900, 900 // (RETIRED // 2))] + \
                [("DELETE", item_id) for item_id in bundle[:RETIRED // 2]]
            assert len(writes) == ADDED + RETIRED
            pending = iter(writes)
            reading = True

            async def writer() -> None:
                for method, item_id in pending:
                    body = {"features": features_of(item_id),
                            "display": {"title": item_id}} if method == "PUT" else None
                    answer = await http.request(method, f"{next(targets)}/items/{item_id}",
                                                json=body)
                    assert answer.status_code in (200, 204), answer.text

            async def reader() -> None:
                while reading:
                    answer = await http.get(f"{next(targets)}/items/{bundle[-1]}")
                    assert answer.status_code == 200

            readers = [asyncio.create_task(reader()) for _ in range(2)]
            await asyncio.gather(*(writer() for _ in range(AT_ONCE)))
            acknowledged = time.monotonic()
            reading = False
            await asyncio.gather(*readers)

            stored = int(redis.Redis.from_url(REDIS_URL).get(Keys(prefix).catalog("version")))
            assert stored == len(writes)
            while True:  # every replica's feed reads the log's last entries by itself
                versions = [catalog_version((await http.get(f"{b}/metrics")).text)
                            for b in bases]
                if versions == [stored] * len(bases):
                    break
                assert time.monotonic() - acknowledged < 1.0, versions
                await asyncio.sleep(0.02)
            retired = {item_id for method, item_id in writes if method == "DELETE"}
            expected = [(i, "bundle") for i in bundle if i not in retired]
            served = [await listing(http, base) for base in bases]
            assert all(s == served[0] for s in served)
            assert served[0][:len(expected)] == expected
            assert sorted(i for i, _ in served[0][len(expected):]) == sorted(
                f"new-{n}" for n in range(ADDED) if f"new-{n}" not in retired)

            # the union as the store ordered it: added items in the order it first took them
            added = [AddedItem(i, features_of(i), {"title": i})
                     for i, _ in served[0][len(expected):]]
            model = ServedModel(gmlfm.bundle, 1, two_phase_items=TWO_PHASE_FROM_ITEMS)
            union = union_of(model, overlay(stored, added, retired))
            await check_top_n(http, bases, model, union)


async def check_top_n(http: httpx.AsyncClient, bases: list[str], model: ServedModel,
                      union: Union) -> None:
    """Every replica answers each user's top n as the others do, and as brute force over
    the union does (ids exact where scores are apart by more than float32's tolerance; equal
    scores in union order), whole and filtered; some of those answers hold added items."""
    bundle_size = len(model.bundle.catalog)
    training = [str(u) for u in model.bundle.users.ids[[0, 1, -1]].tolist()]
    added = union.ids[bundle_size:]
    is_added = set(added)
    # a category, and ids: bundle items, added ones, retired ones (ignored), an unknown one
    served = [i for i in union.ids[:bundle_size] if i not in union.retired]
    picked = served[:6] + added[::40] + sorted(union.retired)[:3] + ["never-added"]
    filters = [({"include": {"category": ["2"]}}, lambda k: "2" in union.values[k], {}),
               ({"item_ids": picked}, lambda k: union.ids[k] in picked,
                unknown("item_ids", picked, union))]
    held_added = False
    for user_id in [*training, "never-seen"]:  # an unknown user: from an empty profile
        state, blocked = state_of(model, user_id, None, []), seen_of(model, user_id, [])
        whole = ("GET", f"/recommend/{user_id}", {"n": TOP_N}, None, lambda k: True, {})
        asked = [whole] + [("POST", "/recommend", None, {"user_id": user_id, "n": TOP_N,
                                                        "filter": spec}, passes, ignored)
                           for spec, passes, ignored in filters]
        for method, path, params, body, passes, ignored in asked:
            answers = [await http.request(method, f"{base}{path}", params=params, json=body)
                       for base in bases]
            got = [ranked(a) for a in answers]
            assert all(g == got[0] for g in got), f"replicas disagree on {method} {path} {body}"
            assert all(a.json()["ignored"] == ignored for a in answers), body
            assert_same_ranking(got[0], brute_force(union, state, TOP_N, blocked, passes),
                                RELATIVE)
            check_ties_and_retired(union, got[0])
            held_added |= any(i in is_added for i, _ in got[0])
    assert held_added, "no answer held an added item: the check ranked the bundle only"
