"""API keys: read them from the settings' text and file, keep only their digests, mint new ones.

A key is sent as `Authorization: Bearer <key>` and carries one scope, which grants the routes
of the scopes it covers (docs/contract.md, Access):

    read     score, recommend, reading items, the model's description
    catalog  read, plus adding and retiring items (PUT and DELETE /items/{id})
    write    read, plus profiles, histories and interactions (any user's: keys name no user)
    admin    every scope, plus GET /users, /metrics and /admin/*

`catalog` and `write` are side by side, neither covering the other: whatever feeds the catalog
(a shop's product system) should not read or write users, and whatever records users should
not change the catalog.

Keys come from GMLREC_API_KEYS and GMLREC_API_KEYS_FILE, as `scope:key` pairs. Only their
SHA-256 digests are kept, and a presented key is hashed and compared with every digest in
constant time, so neither memory nor timing gives a key away; no message holds a key.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

KEY_BYTES = 32  # `keys new`: 256 random bits, 43 URL-safe characters
MIN_KEY_CHARS = 16  # shorter keys are refused when read: guessable


class Scope(enum.Enum):
    READ = "read"
    CATALOG = "catalog"
    WRITE = "write"
    ADMIN = "admin"

    def covers(self, needed: Scope) -> bool:
        """Whether a key of this scope may call a route that needs `needed`."""
        return needed in COVERS[self]


COVERS: dict[Scope, frozenset[Scope]] = {
    Scope.READ: frozenset({Scope.READ}),
    Scope.CATALOG: frozenset({Scope.READ, Scope.CATALOG}),
    Scope.WRITE: frozenset({Scope.READ, Scope.WRITE}),
    Scope.ADMIN: frozenset(Scope),
}


class KeysError(ValueError):
    """GMLREC_API_KEYS or its file is malformed or unreadable; the message never holds a key."""


@dataclass(frozen=True)
class KeyRing:
    """The digests of the configured keys, each with its scope."""

    digests: tuple[tuple[bytes, Scope], ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    @staticmethod
    def parse(text: str, where: str) -> KeyRing:
        """`scope:key` pairs separated by commas or new lines; blank entries and `#`
        comments skipped."""
        entries = []
        for number, raw in enumerate(text.replace(",", "\n").splitlines(), 1):
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            scope, sep, key = entry.partition(":")
            if not sep or scope.strip().upper() not in Scope.__members__:
                raise KeysError(f"{where}: entry {number} is not scope:key with scope read, "
                                "catalog, write or admin")
            if len(key.strip()) < MIN_KEY_CHARS:
                raise KeysError(f"{where}: entry {number}: a key needs at least "
                                f"{MIN_KEY_CHARS} characters (python -m service keys new)")
            entries.append((_digest(key.strip()), Scope[scope.strip().upper()]))
        return KeyRing(tuple(entries))

    @staticmethod
    def read(inline: str | None, file: Path | None) -> KeyRing:
        """The keys of GMLREC_API_KEYS (`inline`) and GMLREC_API_KEYS_FILE together."""
        rings = []
        if inline is not None:
            rings.append(KeyRing.parse(inline, "GMLREC_API_KEYS"))
        if file is not None:
            rings.append(KeyRing.parse(_read_keys_file(file),
                                       f"GMLREC_API_KEYS_FILE ({file})"))
        return KeyRing(tuple(d for ring in rings for d in ring.digests))

    def scope_of(self, key: str) -> Scope | None:
        """The scope of a presented key, None if unknown. Every digest is compared, with
        hmac.compare_digest, whichever matches."""
        presented, found = _digest(key), None
        for digest, scope in self.digests:
            if hmac.compare_digest(presented, digest):
                found = scope
        return found


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def _read_keys_file(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise KeysError(f"GMLREC_API_KEYS_FILE: cannot read {path}: "
                        f"{type(err).__name__}") from None


def new_key(scope: Scope) -> str:
    """A fresh `scope:key` line for GMLREC_API_KEYS_FILE."""
    return f"{scope.value}:{secrets.token_urlsafe(KEY_BYTES)}"
