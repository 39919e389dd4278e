"""Errors of the bundle reader and scorers (no torch, no training imports).

    BundleError          the bundle cannot be served: a file is missing, truncated, corrupt,
                         or of a newer format; the message names the file
    BundleInputError     a request's user features do not fit the bundle: an unknown field,
                         an item-side field given for a user, too many values for a field
"""

from __future__ import annotations

from pathlib import Path


class BundleError(Exception):
    """A bundle that must not be loaded; `path` is the file at fault."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        super().__init__(f"{self.path}: {problem}")


class BundleInputError(ValueError):
    """User or context features the bundle cannot encode; `field` names the offending one."""

    def __init__(self, field: str, problem: str):
        self.field = field
        super().__init__(f"{field}: {problem}")
