"""Waits on a condition with a deadline, in place of a fixed sleep: a test goes on as soon as
what it needs has happened, and fails naming it if that never comes.

A fixed sleep is either too short on a loaded machine (the test fails for no reason) or longer
than needed everywhere else; polling a condition is neither.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
POLL_S = 0.01


def wait_until(condition: Callable[[], T], within_s: float, what: str,
               every_s: float = POLL_S) -> T:
    """The first true value of `condition()`, polled every `every_s`; AssertionError naming
    `what` if none comes within `within_s` seconds."""
    deadline = time.monotonic() + within_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {within_s} s"
        time.sleep(every_s)
    return value


async def wait_until_async(condition: Callable[[], T], within_s: float, what: str,
                           every_s: float = POLL_S) -> T:
    """wait_until inside an event loop: the loop runs (the tasks the condition watches
    included) between polls."""
    deadline = time.monotonic() + within_s
    while not (value := condition()):
        assert time.monotonic() < deadline, f"{what}: not within {within_s} s"
        await asyncio.sleep(every_s)
    return value
