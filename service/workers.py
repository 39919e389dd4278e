"""Several uvicorn workers, each listening on a socket of its own (SO_REUSEPORT, Linux).

uvicorn's workers share one listening socket, and a worker whose event loop wakes accepts
every connection waiting. A burst of keep-alive connections (a proxy's upstream pool, a load
test) then lands on one worker while the others idle: bench.scale_out measured the second of
two workers using no CPU and 0.70× one worker's requests/s. With one socket per worker, each
bound with SO_REUSEPORT, the Linux kernel hands every new connection to one of the listening
sockets by a hash of its addresses, so connections spread over the workers however they
arrive: 0.95 + 0.95 cores busy and 0.98× (section scale-out; the 2 cores are the limit).

uvicorn's supervisor still starts, health-checks, restarts and stops the workers; only the
socket a worker serves changes. That reaches into uvicorn's supervisor (its worker class and
`Multiprocess(config, sockets)`), which is why pyproject.toml asks for uvicorn ≥ 0.54, the
release this was written and tested against; tests/service/api/test_uvicorn.py fails if a
release moves them. The supervisor's own socket is bound but never listens: it
holds the port (and resolves port 0) without taking connections.
"""

from __future__ import annotations

import logging
import socket
import sys

import uvicorn
from uvicorn.server import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess, multiprocess

log = logging.getLogger("service.workers")


def spreads_connections() -> bool:
    """Only Linux balances connections over SO_REUSEPORT sockets; elsewhere the option
    exists (macOS, BSD) but one socket takes them all, so uvicorn's shared socket is better."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuse_port_socket(host: str, port: int, alone: bool = False) -> socket.socket:
    """A socket bound with SO_REUSEPORT. `alone` first binds one without it, which fails
    when anything holds the port: SO_REUSEPORT would otherwise let a second `python -m
    service` share the port with this one, and its traffic, without a word."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    if alone:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            port = probe.getsockname()[1]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class OwnSocketWorker(multiprocess.Process):
    """uvicorn's worker process, serving a SO_REUSEPORT socket it binds itself instead of
    the one the supervisor passes to every worker."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:
        super().target([reuse_port_socket(self.config.host, self.config.port)])


def run(config: uvicorn.Config) -> None:
    """Serve config.workers workers, each on its own socket, under uvicorn's supervisor."""
    try:
        holder = reuse_port_socket(config.host, config.port, alone=True)
    except OSError as err:  # as uvicorn says it for one worker: a log line, exit 3
        log.error("cannot listen on %s:%d: %s", config.host, config.port, err.strerror)
        sys.exit(STARTUP_FAILURE)
    config.port = holder.getsockname()[1]
    log.info("listening on %s:%d with %d workers, one socket each", config.host, config.port,
             config.workers)
    shared_socket_worker = multiprocess.Process
    multiprocess.Process = OwnSocketWorker  # the class the supervisor starts workers from
    try:
        Multiprocess(config, sockets=[holder]).run()
    finally:
        multiprocess.Process = shared_socket_worker
        holder.close()
