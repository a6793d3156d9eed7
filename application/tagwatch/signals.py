"""SIGINT and SIGTERM as bytes on a pipe that the main thread waits on.

The kernel may deliver a process signal to any thread (the metrics server's, say); Python then runs the
handler only when the main thread next executes bytecode, which a main thread blocked in a lock wait never
does. So the handler does nothing, `signal.set_wakeup_fd` writes the signal number to a pipe, and the main
thread blocks in `select` on that pipe: it wakes at once whichever thread took the signal, and nothing that
takes a lock ever runs inside a handler.
"""

from __future__ import annotations

import os
import select
import signal
import threading
from contextlib import suppress
from types import TracebackType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_WAKE = 0  # not a signal number: wake() writes it


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler: the wake-up pipe already carries the signal."""


class SignalWatch:
    """Catch SIGINT/SIGTERM until close(); wait() returns when one arrives or wake() is called.

    Create it in the main thread before starting other threads or child processes.
    """

    def __init__(self, signums: tuple[int, ...] = STOP_SIGNALS) -> None:
        self._signums = signums
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()  # wake() and close() only: never taken in a signal handler
        self._closed = False
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous = {signum: signal.signal(signum, _ignore) for signum in signums}

    def wake(self) -> None:
        """Make wait() return 0; any thread may call it (its work is done); after close() it does nothing."""
        with self._lock:
            if self._closed:
                return
            with suppress(BlockingIOError):  # a full pipe: wait() returns anyway
                os.write(self._write, bytes([_WAKE]))

    def wait(self, timeout: float | None = None) -> int | None:
        """Block until a signal (returns its number), a wake() (returns 0) or the timeout (returns None)."""
        ready, _, _ = select.select([self._read], [], [], timeout)
        if not ready:
            return None
        try:
            data = os.read(self._read, 512)
        except BlockingIOError:
            return None
        caught = [value for value in data if value in self._signums]
        return caught[0] if caught else _WAKE

    def close(self) -> None:
        """Restore the previous handlers and wake-up fd."""
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(self._previous_fd)
        with self._lock:
            self._closed = True
            os.close(self._read)
            os.close(self._write)

    def __enter__(self) -> SignalWatch:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def signal_name(signum: int) -> str:
    """SIGINT, SIGTERM, …"""
    return signal.Signals(signum).name
