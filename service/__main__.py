"""`python -m service`: uvicorn with GMLREC_WORKERS workers, settings from GMLREC_* env.
`python -m service keys new --scope read|write|admin` prints a fresh key line instead.

Before anything starts, the settings are read and checked against every start-up safety
rule (service/settings.py): a problem is one line on stderr naming the variable, and exit
status 2.

One worker is plain `uvicorn.run`. Several are, on Linux, uvicorn workers under gunicorn,
each listening on a socket of its own (service/workers.py), so connections spread over the
workers however they arrive; elsewhere uvicorn's own workers on one shared socket. Either
way each worker imports the app and runs its lifespan in its own process, so the bundle,
its onnxruntime session (GMLREC_ORT_THREADS intra-op threads, by default the cores shared
out among the workers) and the Redis pool are made after the fork, never shared. SIGTERM or
SIGINT stops accepting, lets requests in flight finish (GMLREC_GRACEFUL_TIMEOUT_S), then
closes the store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
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


def spreads_connections() -> bool:
    """Only Linux balances connections over SO_REUSEPORT sockets; elsewhere the option
    exists (macOS, BSD) but one socket takes them all, so uvicorn's shared socket is better."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def keys_command(argv: list[str]) -> int:
    """`keys new --scope S`: one `scope:key` line for GMLREC_API_KEYS_FILE, on stdout."""
    parser = argparse.ArgumentParser(prog="python -m service keys",
                                     description="make an API key (docs/operations.md, "
                                                 "Secure)")
    commands = parser.add_subparsers(dest="command", required=True)
    new = commands.add_parser("new", help="print a fresh `scope:key` line for the keys file")
    new.add_argument("--scope", choices=[s.name.lower() for s in Scope], default="read")
    args = parser.parse_args(argv)
    print(new_key(Scope[args.scope.upper()]))
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
    # what each worker's uvicorn gets, however many there are
    options: dict[str, Any] = {"access_log": False, "lifespan": "on",
                               "timeout_graceful_shutdown": settings.graceful_timeout_s}
    try:
        if settings.workers > 1 and spreads_connections():
            from service import workers  # gunicorn, imported where it runs (not Windows)

            workers.run(APP, settings.host, settings.port, settings.workers,
                        settings.log_level, settings.graceful_timeout_s, options)
        else:
            uvicorn.run(APP, host=settings.host, port=settings.port, workers=settings.workers,
                        log_config=None, **options)
    finally:
        if own_metrics_dir:
            shutil.rmtree(os.environ[MULTIPROC_ENV], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
