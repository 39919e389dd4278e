"""A real uvicorn server for tests that speak HTTP over a socket (schemathesis, many
clients): run in a thread of the test process, on a free loopback port."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.settings import Settings
from tests.support.servers import free_port


@contextmanager
def live_server(settings: Settings, app: FastAPI | None = None):
    """Yield the base URL of a server running `app` (by default create_app(settings)); stop
    it after."""
    port = free_port()
    config = uvicorn.Config(app or create_app(settings), host="127.0.0.1", port=port,
                            log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(30)

