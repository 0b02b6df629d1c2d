"""Ctrl-C during training: the first SIGINT asks the loop to finish its step, save a checkpoint
and exit cleanly; a second one aborts at once."""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any


class GracefulInterrupt:
    """Context manager whose `requested` turns True on the first SIGINT (main thread only)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\ninterrupt: finishing this step and saving a checkpoint (Ctrl-C again to abort)",
            file=sys.stderr,
            flush=True,
        )

    def __enter__(self) -> GracefulInterrupt:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None
