"""A running `python -m service`: when it is ready, and its worker processes (from /proc,
Linux)."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import httpx

from tests.support.waiting import wait_until


def wait_until_ready(base: str, process: subprocess.Popen, within_s: float = 60) -> None:
    """Until the server at `base` answers /ready with a 200 (a model served); fails at once
    if the process exits."""
    def ready() -> bool:
        assert process.poll() is None, "python -m service exited"
        try:
            return httpx.get(f"{base}/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, within_s, "python -m service ready", every_s=0.1)


def workers_of(pid: int) -> list[int]:
    """The worker processes of `python -m service` at `pid`: its children (uvicorn's
    supervisor starts them), or the process itself with one worker. multiprocessing's
    resource tracker, also a child of the supervisor, is not one."""
    children = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):  # exited while we looked
            status = parse_status_ppid((proc / "status").read_text())
            command = (proc / "cmdline").read_bytes()
            if status == pid and b"resource_tracker" not in command:
                children.append(int(proc.name))
    return sorted(children) or [pid]


def parse_status_ppid(status: str) -> int:
    """The parent pid in the text of /proc/<pid>/status."""
    return next(int(line.split()[1]) for line in status.splitlines()
                if line.startswith("PPid:"))
