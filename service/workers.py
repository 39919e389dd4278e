"""Several uvicorn workers under gunicorn, each listening on a socket of its own (Linux).

uvicorn's own supervisor gives every worker one shared listening socket, and a worker whose
event loop wakes accepts every connection waiting. A burst of keep-alive connections (a
proxy's upstream pool, a load test) then lands on one worker while the others idle:
bench.scale_out measured the second of two workers using no CPU and 0.70× one worker's
requests/s. With one socket per worker, each bound with SO_REUSEPORT, the Linux kernel hands
every new connection to one of the listening sockets by a hash of its addresses, so
connections spread over the workers however they arrive (section scale-out).

gunicorn does exactly that with its `reuse_port` setting since release 24.0.0: the master
binds no socket, and each worker, just after the fork, binds and listens on its own (23.0.0
and older set SO_REUSEPORT on the master's one socket, which every worker inherited and
shared, as with uvicorn's supervisor). The worker here trades that socket for one that
starts listening once the app has started (not_listening_yet). gunicorn starts the workers,
replaces one that dies or whose event loop stops answering for WORKER_TIMEOUT_S, and on
SIGTERM has them stop gracefully. Each worker is uvicorn itself (the uvicorn-worker
package's UvicornWorker), serving service.app:app with the options `uvicorn.run` gets for
one worker, keep-alive timeout included. Everything is configured here, through gunicorn's
documented BaseApplication: no config file, no command-line arguments, no GUNICORN_CMD_ARGS.
tests/service/api/test_uvicorn.py checks that every worker holds a listening socket of its
own, so a gunicorn release that went back to sharing one would fail it.
"""

from __future__ import annotations

import importlib
import logging
import math
import socket
import sys
from typing import Any

from gunicorn.app.base import BaseApplication
from uvicorn_worker import UvicornWorker

from service import logs

log = logging.getLogger("service.workers")

PORT_IN_USE = 3  # the exit status uvicorn gives for a port it cannot bind, with one worker
# gunicorn replaces a worker whose event loop has not ticked for this long. The first tick
# comes after the app's startup, which loads the bundle, so this covers the slowest load.
WORKER_TIMEOUT_S = 120
# what the master allows past GMLREC_GRACEFUL_TIMEOUT_S for a worker's lifespan shutdown
# (closing the store) before it kills the worker
SHUTDOWN_MARGIN_S = 5
KEEPALIVE_S = 5  # idle keep-alive connections close after this long, as uvicorn's default


def free_port_or_exit(host: str, port: int) -> int:
    """The port (port 0 resolved), once a socket bound without SO_REUSEPORT proves that
    nothing listens there: SO_REUSEPORT would otherwise let a second `python -m service`
    share the port with this one, and its traffic, without a word. A port in use is one log
    line and exit status 3, as uvicorn says it for one worker."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
            return probe.getsockname()[1]
    except OSError as err:
        log.error("cannot listen on %s:%d: %s", host, port, err.strerror)
        sys.exit(PORT_IN_USE)


def not_listening_yet(listener: Any) -> socket.socket:
    """A SO_REUSEPORT socket bound to `listener`'s address that does not listen yet, in
    place of `listener`, which is closed. gunicorn's worker listens from the fork on, so the
    kernel would queue its share of new connections behind the app's import and startup
    (a second and more; a large bundle takes longer); uvicorn listens on this one once the
    app has started, as it does with one worker, and until then the others take them all."""
    sock = socket.socket(listener.family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(listener.getsockname())
    listener.close()
    return sock


def worker_class(uvicorn_options: dict[str, Any]) -> type[UvicornWorker]:
    """UvicornWorker with these uvicorn.Config options (its documented CONFIG_KWARGS), that
    listens only once the app has started, and whose process logs JSON from its first line
    (UvicornWorker hands uvicorn's loggers to gunicorn's handlers; service.logs sends them
    to the root logger again)."""

    class GmlrecWorker(UvicornWorker):
        CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, **uvicorn_options}

        def init_process(self) -> None:  # in the worker, after the fork
            logs.configure(self.cfg.loglevel)
            self.sockets = [not_listening_yet(listener) for listener in self.sockets]
            super().init_process()

    return GmlrecWorker


def logging_config(level: str) -> dict[str, Any]:
    """gunicorn's own lines (the master's) as JSON on stdout, like every other line."""
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": logs.JSONFormatter}},
            "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                                    "stream": "ext://sys.stdout"}},
            "root": {"level": level.upper(), "handlers": ["stdout"]},
            "loggers": {"gunicorn.error": {"handlers": [], "propagate": True}}}


class Gunicorn(BaseApplication):
    """gunicorn configured from a dict; each worker imports the app after the fork."""

    def __init__(self, app: str, options: dict[str, Any]) -> None:
        self.app_path, self.options = app, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:  # gunicorn >= 25.1 opens a
            self.cfg.set("control_socket_disable", True)  # socket for gunicornc otherwise

    def load(self) -> Any:
        module, _, name = self.app_path.partition(":")
        return getattr(importlib.import_module(module), name)


def gunicorn_options(host: str, port: int, workers: int, log_level: str,
                     graceful_timeout_s: float, uvicorn_options: dict[str, Any]
                     ) -> dict[str, Any]:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {"bind": [address], "workers": workers, "reuse_port": True,
            "worker_class": worker_class(uvicorn_options), "loglevel": log_level,
            "logconfig_dict": logging_config(log_level), "accesslog": None,
            "timeout": WORKER_TIMEOUT_S, "keepalive": KEEPALIVE_S,
            "graceful_timeout": math.ceil(graceful_timeout_s) + SHUTDOWN_MARGIN_S}


def run(app: str, host: str, port: int, workers: int, log_level: str,
        graceful_timeout_s: float, uvicorn_options: dict[str, Any]) -> None:
    """Serve `workers` uvicorn workers of `app`, each on its own SO_REUSEPORT socket."""
    port = free_port_or_exit(host, port)
    log.info("listening on %s:%d with %d workers, one socket each", host, port, workers)
    Gunicorn(app, gunicorn_options(host, port, workers, log_level, graceful_timeout_s,
                                   uvicorn_options)).run()
