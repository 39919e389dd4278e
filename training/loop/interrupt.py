"""Ctrl-C during training: the first asks the loop to stop after the current batch, so the
best epoch so far can still be tested and saved; a second aborts at once, saving nothing."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType, TracebackType

log = logging.getLogger(__name__)


class StopRequest:
    """While entered, SIGINT sets `requested` instead of raising; the second SIGINT raises
    KeyboardInterrupt. Outside the main thread (no signals there) it only ever stays False."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: object = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # on stderr as it is when nothing configured logging (its last resort), as for the CLI
        log.warning("\ninterrupt: stopping after this batch and saving the best epoch so far "
                    "(Ctrl-C again aborts and saves nothing)")
