"""The API's gunicorn worker: gunicorn's gevent worker that quits once.

Ctrl-C reaches each worker twice (the terminal's SIGINT to the process group, then the master's SIGQUIT).
The stock worker calls sys.exit for both; the second one lands while the interpreter is shutting down and
prints a non-JSON traceback. Quitting once keeps the logs clean and the exit as fast.
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventWorker


class Worker(GeventWorker):
    """A gevent worker whose quit signal handler runs once."""

    quitting = False

    def handle_quit(self, sig, frame) -> None:
        """Quit now, on the first SIGINT/SIGQUIT only."""
        if self.quitting:
            return
        self.quitting = True
        super().handle_quit(sig, frame)
