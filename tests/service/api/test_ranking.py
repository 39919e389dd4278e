"""The three ways of running /recommend's top n give the same answers, one user at a time
or many at once (the batch mode stacks concurrent users, with their own n and exclusions)."""

from __future__ import annotations

import asyncio

import pytest

from service.ranking import stack_limit
from tests.service.api.conftest import serving, settings_for

pytestmark = pytest.mark.anyio


def requests() -> list[tuple[str, dict]]:
    """Known users with several n and both exclusion settings, and cold users."""
    known = [(f"/recommend/{u}", {"n": 1 + u % 13, "exclude_seen": str(u % 2 == 0).lower()})
             for u in range(60)]
    return known + [("/recommend", {"user": {"segment": str(s)}, "n": 7}) for s in range(3)]


async def answers(client) -> list[dict]:
    async def one(path, params):
        if path == "/recommend":
            r = await client.post(path, json=params)
        else:
            r = await client.get(path, params=params)
        assert r.status_code == 200, r.text
        return r.json()["items"]
    return await asyncio.gather(*(one(p, q) for p, q in requests()))


@pytest.mark.parametrize("mode", ["thread", "batch"])
async def test_every_ranking_mode_answers_as_inline(gmlfm, mode):
    async with serving(settings_for(gmlfm.models_dir, ranking="inline")) as client:
        want = await answers(client)
    async with serving(settings_for(gmlfm.models_dir, ranking=mode)) as client:
        assert await answers(client) == want


def test_stacked_calls_are_bounded_by_catalog_size():
    assert stack_limit(1682) == 64
    assert stack_limit(100_000) == 10
    assert stack_limit(1_000_000) == 1
    assert stack_limit(10_000_000) == 1
