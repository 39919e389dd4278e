"""Redis key names. Every key of one user carries the hash tag `{user:<id>}`, so a user's
profile, interactions and states share one Redis Cluster slot and can go in one pipeline.

    <prefix>:{user:<id>}:profile                  JSON of the user's features
    <prefix>:{user:<id>}:history                  item ids the user interacted with, oldest
                                                  first, capped (also its seen items)
    <prefix>:{user:<id>}:state:<model>:<version>  the user state blob, with a TTL

Profiles and histories have no TTL unless GMLREC_PROFILE_TTL_S sets one (restarted by each
write). Ids are percent-encoded ('%', '{', '}', ':' and anything outside printable ASCII), so no id
can end the hash tag early or spell another user's key.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

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

    def reload(self) -> str:
        """The count of POST /admin/reload calls, shared by every worker and replica."""
        return f"{self.prefix}:reload-generation"

    def pattern(self) -> str:
        """Every key under this prefix (for tests and tools that clean up after themselves)."""
        return f"{self.prefix}:*"
