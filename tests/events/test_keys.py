"""events/redis_log.py reads the keys the service writes: its names are service/stores/keys.py's,
for any id, however it must be escaped."""

from __future__ import annotations

import random
import string

import pytest

from events import redis_log
from service.stores.keys import SAFE, Keys

IDS = ["1", "a:b", "{x}", "50%", "é", "we ird", "*", "u}:events", "[a]?"]


def random_ids(n: int) -> list[str]:
    rng = random.Random(0)
    alphabet = string.printable + "é{}%:"
    return [''.join(rng.choice(alphabet) for _ in range(rng.randrange(1, 12))) for _ in range(n)]


@pytest.mark.parametrize("prefix", ["gmlrec", "a.b-c_d"])
def test_the_log_names_keys_as_the_service_does_and_reads_the_user_back(prefix):
    keys = Keys(prefix)
    for user in IDS + random_ids(300):
        assert redis_log.stream_key(prefix, user) == keys.events(user)
        assert f"{redis_log.user_key(prefix, user)}:profile" == keys.profile(user)
        assert redis_log.user_of(prefix, keys.events(user)) == user
    assert redis_log.SAFE == SAFE
    for part in ("items", "retired"):
        assert redis_log.catalog_key(prefix, part) == keys.catalog(part)


def test_a_key_of_another_kind_is_not_a_stream():
    with pytest.raises(ValueError, match="not an event stream key"):
        redis_log.user_of("gmlrec", Keys("gmlrec").history("1"))
