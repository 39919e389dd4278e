"""`python -m service`: uvicorn with GMLREC_WORKERS workers, settings from GMLREC_* env.
`python -m service keys new --scope read|catalog|write|admin` prints a fresh key line instead.

Before anything starts, the settings are read and checked against every start-up safety
rule (service/settings.py): a problem is one line on stderr naming the variable, and exit
status 2.

Serving is `uvicorn.run`, with GMLREC_WORKERS workers. With several, uvicorn's own
supervisor binds the one listening socket and starts each worker in a process of its own
(it replaces one that dies). A worker imports the app and runs its lifespan, which loads the
bundle, before its server takes connections from the socket, so no connection is accepted by
a worker that has no model yet. The bundle, its onnxruntime session (GMLREC_ORT_THREADS
intra-op threads, by default the cores shared out among the workers) and the Redis pool are
made in each worker, never shared. The workers share the socket: whichever is idle accepts
the connections waiting, so a burst of keep-alive connections can land on one of them
(bench/RESULTS.md, section scale-out); replicas behind a proxy spread connections instead.
SIGTERM or SIGINT stops accepting, lets requests in flight finish
(GMLREC_GRACEFUL_TIMEOUT_S), then closes the store.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import tempfile
from typing import Any

import uvicorn

from service import logs
from service.keys import Scope, new_key
from service.settings import settings_or_exit

# service.metrics reads this too; not imported from there because prometheus_client must
# not be imported before the variable is set
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
APP = "service.app:app"


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's log_config: every line JSON on stdout (service.logs), in the supervisor and
    in each worker from its first line on. uvicorn applies it in every worker it starts, which
    begins with no logging configured; the app configures its own only in the lifespan."""
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": logs.JSONFormatter}},
            "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                                    "stream": "ext://sys.stdout"}},
            "root": {"level": level.upper(), "handlers": ["stdout"]},
            "loggers": {name: {"handlers": [], "propagate": True}
                        for name in ("uvicorn", "uvicorn.error")}}


def keys_command(argv: list[str]) -> int:
    """`keys new --scope S`: one `scope:key` line for GMLREC_API_KEYS_FILE, on stdout."""
    parser = argparse.ArgumentParser(prog="python -m service keys",
                                     description="make an API key (docs/operations.md, "
                                                 "Secure)")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="print a fresh `scope:key` line for the keys file")
    new.add_argument("--scope", choices=[s.value for s in Scope], default="read")
    args = parser.parse_args(argv)
    print(new_key(Scope(args.scope)))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keys"]:
        return keys_command(argv[1:])
    if argv:
        print(f"python -m service: unknown arguments {' '.join(argv)!r}: settings come from "
              "GMLREC_* variables (docs/configuration.md); `keys new` makes a key",
              file=sys.stderr)
        return 2
    settings = settings_or_exit("python -m service")
    logs.configure(settings.log_level)
    own_metrics_dir = MULTIPROC_ENV not in os.environ
    if own_metrics_dir:  # set before any worker imports prometheus_client
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="gmlrec-metrics-")
    try:  # uvicorn takes whole seconds to finish requests at stop: never fewer than asked
        uvicorn.run(APP, host=settings.host, port=settings.port, workers=settings.workers,
                    log_config=log_config(settings.log_level), access_log=False,
                    lifespan="on", timeout_graceful_shutdown=math.ceil(settings.graceful_timeout_s))
    finally:
        if own_metrics_dir:
            shutil.rmtree(os.environ[MULTIPROC_ENV], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
