"""The repo's one free-port finder, for every process it starts for itself: an API server or a
redis-server of a test or a benchmark, torchrun's rendezvous.

It lives in tests/support because tests must not import bench; bench imports it from here.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the system picks it; take it soon)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
