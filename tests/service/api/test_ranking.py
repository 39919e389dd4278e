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


def counted(metrics_text: str, path: str) -> float:
    """gmlrec_two_phase_total{path=...} in a /metrics answer (0 when absent)."""
    prefix = f'gmlrec_two_phase_total{{path="{path}"}} '
    return sum(float(line[len(prefix):]) for line in metrics_text.splitlines()
               if line.startswith(prefix))


async def test_the_two_phase_graph_answers_as_model_onnx(gmlfm, with_history):
    """GMLREC_TWO_PHASE_ITEMS=0 sends every lone user through two_phase.onnx: the same items
    and scores, to the bit, as model.onnx alone (GMLREC_TWO_PHASE_ITEMS above the catalog),
    known and cold users, with and without exclusions, with a history; /metrics counts the
    calls by the path that answered."""
    for trained in (gmlfm, with_history):
        alone = settings_for(trained.models_dir, ranking="inline", two_phase_items=10**9,
                             prune="off")
        async with serving(alone) as client:
            before = (await client.get("/metrics")).text
            want = await answers(client)
            after = (await client.get("/metrics")).text  # (counters are the process's)
            assert counted(after, "certified") == counted(before, "certified")
        two_phase = settings_for(trained.models_dir, ranking="inline", two_phase_items=0,
                                 prune="off")
        async with serving(two_phase) as client:
            before = (await client.get("/metrics")).text
            assert await answers(client) == want
            after = (await client.get("/metrics")).text
            answered = sum(counted(after, p) - counted(before, p)
                           for p in ("certified", "float32"))
            assert answered == len(requests())
            assert counted(after, "certified") - counted(before, "certified") > 0


def metric(metrics_text: str, prefix: str) -> float:
    """The sum of the /metrics lines starting with `prefix` (0 when absent)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith(prefix))


async def test_the_block_search_answers_as_model_onnx_and_says_so(gmlfm, with_history):
    """GMLREC_PRUNE=on ranks every lone user by the block search: the same items and scores,
    to the bit, as model.onnx alone, known and cold users, with and without exclusions;
    /metrics counts the calls and names the path of each shape."""
    for trained in (gmlfm, with_history):
        alone = settings_for(trained.models_dir, ranking="inline", two_phase_items=10**9,
                             prune="off")
        async with serving(alone) as client:
            want = await answers(client)
            text = (await client.get("/metrics")).text
            assert metric(text, 'gmlrec_ranking_path{path="float32",shape="n<=10"}') == 1
        pruned = settings_for(trained.models_dir, ranking="inline", two_phase_items=10**9,
                              prune="on")
        async with serving(pruned) as client:
            before = (await client.get("/metrics")).text
            assert await answers(client) == want
            after = (await client.get("/metrics")).text
            calls = sum(metric(after, f'gmlrec_pruned_total{{result="{r}"}}')
                        - metric(before, f'gmlrec_pruned_total{{result="{r}"}}')
                        for r in ("answered", "fell_back"))
            assert calls == len(requests())
            for shape in ("n<=10", "n<=100", "n>100"):
                assert metric(after, f'gmlrec_ranking_path{{path="pruned",shape="{shape}"}}') == 1
