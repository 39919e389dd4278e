"""The worker processes of a running `python -m service`, read from /proc (Linux)."""

from __future__ import annotations

import contextlib
from pathlib import Path


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
