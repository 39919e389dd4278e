"""The experiment's records in Redis: service/stores/experiment.py, shared by every replica.

A user's answers are a list under the user's hash tag, so each change to it is one script on
one node; the counts are a hash and one HyperLogLog per variant under the experiment's own
tag (keys.py), so /admin/experiment reads them in one round trip. The scripts below are the
experiment's own: they touch no key of the user store's.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis import asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from service.stores.experiment import Counts, Credit, Impression, Recorded
from service.stores.keys import Keys

# KEYS: the user's answers; ARGV: the recommendation id. Marks the answer impressed (bit 1);
# returns {variant, first impression (0/1), hit (0/1), the answer's items as JSON} or nil.
IMPRESS = """
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
for i, raw in ipairs(entries) do
  local e = cjson.decode(raw)
  if e.id == ARGV[1] then
    local m = e.m or 0
    local first = m % 2 == 0
    if first then
      e.m = m + 1
      redis.call('LSET', KEYS[1], i - 1, cjson.encode(e))
    end
    return {e.v, first and 1 or 0, (m == 2) and 1 or 0, raw}
  end
end
return false
"""
# KEYS: the user's answers; ARGV: the recommendation id ('' for none), the oldest time an
# answer may have, then the items. Credits each item to the newest answer in time that holds
# it (the one named, if one is), marks those answers interacted (bit 2); returns
# {variant, items credited, hit (0/1)} for each.
ATTRIBUTE = """
local entries = redis.call('LRANGE', KEYS[1], 0, -1)
local since = tonumber(ARGV[2])
local answers, holds = {}, {}
for i, raw in ipairs(entries) do
  local e = cjson.decode(raw)
  if e.at >= since and (ARGV[1] == '' or e.id == ARGV[1]) then
    local set = {}
    for _, item in ipairs(e.items) do set[item] = true end
    table.insert(answers, {i, e})
    table.insert(holds, set)
  end
end
local credit = {}
for j = 3, #ARGV do
  for k, set in ipairs(holds) do
    if set[ARGV[j]] then
      credit[k] = (credit[k] or 0) + 1
      break
    end
  end
end
local out = {}
for k, n in pairs(credit) do
  local i, e = answers[k][1], answers[k][2]
  local m = e.m or 0
  if m < 2 then
    e.m = m + 2
    redis.call('LSET', KEYS[1], i - 1, cjson.encode(e))
  end
  table.insert(out, {e.v, n, (m == 1) and 1 or 0})
end
return out
"""


class RedisExperiments:
    """The ExperimentStore interface over the Redis store's client; `call` is the store's
    failure path (a Redis fault becomes StoreUnavailable, a cluster's map is refreshed)."""

    def __init__(self, client: aioredis.Redis | RedisCluster, keys: Keys,
                 call: Callable[[Awaitable[Any]], Awaitable[Any]]):
        self.client, self.keys, self._call = client, keys, call

    async def record_answer(self, experiment: str, user_id: str, answer: Recorded, cap: int,
                            ttl_s: int) -> None:
        entry = json.dumps({"id": answer.recommendation_id, "v": answer.variant,
                            "items": list(answer.items), "at": round(answer.at, 3)})
        key = self.keys.answers(user_id, experiment)
        pipe = self.client.pipeline(transaction=False)
        pipe.lpush(key, entry)
        pipe.ltrim(key, 0, cap - 1)
        pipe.expire(key, ttl_s)
        # the list (the user's node) and the counts (the experiment's) side by side
        await asyncio.gather(self._call(pipe.execute()),
                             self._count(experiment, answer.variant, {"answers": 1}, user_id))

    async def record_impression(self, experiment: str, user_id: str, recommendation_id: str,
                                item_ids: Sequence[str]) -> Impression | None:
        found = await self._call(self.client.eval(
            IMPRESS, 1, self.keys.answers(user_id, experiment), recommendation_id))
        if not found:
            return None
        variant, first, hit, raw = _text(found[0]), bool(found[1]), bool(found[2]), found[3]
        items = set(json.loads(raw).get("items") or [])
        await self._count(experiment, variant, {"impressions": int(first), "hits": int(hit)})
        return Impression(variant, first, hit, len(set(item_ids) & items))

    async def attribute(self, experiment: str, user_id: str, recommendation_id: str | None,
                        item_ids: Sequence[str], now: float, window_s: int) -> list[Credit]:
        found = await self._call(self.client.eval(
            ATTRIBUTE, 1, self.keys.answers(user_id, experiment), recommendation_id or "",
            round(now - window_s, 3), *item_ids))
        credits = [Credit(_text(v), int(n), bool(hit)) for v, n, hit in found or []]
        for credit in credits:
            await self._count(experiment, credit.variant,
                              {"attributed": credit.items, "hits": int(credit.hit)})
        return credits

    async def record_shadow(self, experiment: str, variant: str, overlap: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(self.keys.experiment(experiment), f"shadow_answers:{variant}", 1)
        pipe.hincrbyfloat(self.keys.experiment(experiment), f"overlap_sum:{variant}", overlap)
        await self._call(pipe.execute())

    async def counts(self, experiment: str, variants: Sequence[str]) -> dict[str, Counts]:
        # side by side, not one pipeline: redis-py refuses PFCOUNT in a cluster's pipeline
        counted, *users = await asyncio.gather(
            self._call(self.client.hgetall(self.keys.experiment(experiment))),
            *(self._call(self.client.pfcount(self.keys.experiment(experiment, variant)))
              for variant in variants))
        fields = {_text(k): float(v) for k, v in counted.items()}
        return {variant: Counts.of(int(n), fields, f":{variant}")
                for variant, n in zip(variants, users)}

    async def _count(self, experiment: str, variant: str, by: dict[str, int],
                     user_id: str | None = None) -> None:
        """Add to a variant's counts (and its users) in one round trip to the experiment's
        node; nothing to add, no call."""
        by = {what: n for what, n in by.items() if n}
        if not by and user_id is None:
            return
        pipe = self.client.pipeline(transaction=False)
        for what, n in by.items():
            pipe.hincrby(self.keys.experiment(experiment), f"{what}:{variant}", n)
        if user_id is not None:
            pipe.pfadd(self.keys.experiment(experiment, variant), user_id)
        await self._call(pipe.execute())


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
