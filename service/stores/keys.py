"""Redis key names. Every key of one user carries the hash tag `{user:<id>}`, so a user's
profile, interactions and states share one Redis Cluster slot and can go in one pipeline.

    <prefix>:{user:<id>}:profile                  JSON of the user's features
    <prefix>:{user:<id>}:history                  item ids the user interacted with, oldest
                                                  first, capped (also its seen items)
    <prefix>:{user:<id>}:state:<model>:<version>  the user state blob, with a TTL
    <prefix>:{user:<id>}:events                   stream: the user's event log, one entry
                                                  per interactions batch (events/)

Profiles and histories have no TTL unless GMLREC_PROFILE_TTL_S sets one (restarted by each
write). Ids are percent-encoded ('%', '{', '}', ':' and anything outside printable ASCII), so
no id can end the hash tag early or spell another user's key.

The catalog overlay (service/stores/catalog.py) has keys of its own, all under the one hash
tag `{catalog}`, so a change and its log entry are one script on one node:

    <prefix>:{catalog}:items    hash: item id -> "<first version> <record JSON>"
    <prefix>:{catalog}:retired  set of retired item ids
    <prefix>:{catalog}:version  the count of changes, the overlay's version
    <prefix>:{catalog}:epoch    set by the first change: names this catalog
    <prefix>:{catalog}:log      stream of the last changes, entry id "<version>-0"

Item ids are hash fields, set members and stream values, never part of a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from events.redis_log import STREAM

SAFE = "-._~!$&'()*+,;=@/[]^`|"  # printable ASCII that needs no escaping inside a key


@dataclass(frozen=True)
class Keys:
    prefix: str

    def user(self, user_id: str) -> str:
        return f"{self.prefix}:{{user:{quote(user_id, safe=SAFE)}}}"

    def profile(self, user_id: str) -> str:
        return f"{self.user(user_id)}:profile"

    def history(self, user_id: str) -> str:
        return f"{self.user(user_id)}:history"

    def state(self, user_id: str, model: str) -> str:
        """`model` is "<name>:<version>": a new model version never reads an old state."""
        return f"{self.user(user_id)}:state:{model}"

    def events(self, user_id: str) -> str:
        """The user's event stream (events/redis_log.py reads it by this very name)."""
        return f"{self.user(user_id)}:{STREAM}"

    def reload(self) -> str:
        """The count of POST /admin/reload calls, shared by every worker and replica."""
        return f"{self.prefix}:reload-generation"

    def catalog(self, part: str) -> str:
        """A key of the catalog overlay: `items`, `retired`, `version`, `epoch` or `log`."""
        return f"{self.prefix}:{{catalog}}:{part}"

    def pattern(self) -> str:
        """Every key under this prefix (for tests and tools that clean up after themselves)."""
        return f"{self.prefix}:*"
