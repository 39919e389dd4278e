"""Errors a user can cause, reported by the CLI as one line and a non-zero exit.

    GmlrecError
    ├── DataError      a file is missing, malformed, or inconsistent (names file and line)
    └── ConfigError    an option is unknown or out of range (names the option)
"""

from __future__ import annotations


class GmlrecError(Exception):
    """Base of every error the CLI turns into a one-line message instead of a traceback."""


class DataError(GmlrecError):
    """Input data cannot be used; the message names the file, the line and the problem."""

    def __init__(self, problem: str, path: object | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + problem)


class ConfigError(GmlrecError):
    """An option or config value is unknown or invalid; the message names it."""
