"""SignalWatch: a signal taken by any thread wakes the main thread's wait at once."""

from __future__ import annotations

import signal
import threading
import time

from tagwatch.signals import SignalWatch


def test_signal_taken_by_another_thread_wakes_the_main_thread():
    # the bug: the signal went to the metrics server's thread while the main thread waited on a lock
    parked = threading.Event()
    thread = threading.Thread(target=parked.wait, args=(10,), daemon=True)
    thread.start()
    with SignalWatch((signal.SIGUSR1,)) as watch:
        started = time.monotonic()
        signal.pthread_kill(thread.ident, signal.SIGUSR1)
        assert watch.wait(timeout=5) == signal.SIGUSR1
        assert time.monotonic() - started < 1.0
    parked.set()


def test_wake_timeout_and_close_restore_the_previous_handler():
    previous = signal.getsignal(signal.SIGUSR2)
    watch = SignalWatch((signal.SIGUSR2,))
    assert watch.wait(timeout=0.05) is None
    threading.Thread(target=watch.wake).start()
    assert watch.wait(timeout=5) == 0
    watch.close()
    watch.wake()  # after close: nothing, and no error
    assert signal.getsignal(signal.SIGUSR2) is previous


def test_signal_before_wait_is_not_lost():
    with SignalWatch((signal.SIGUSR1,)) as watch:
        signal.raise_signal(signal.SIGUSR1)
        time.sleep(0.1)
        assert watch.wait(timeout=1) == signal.SIGUSR1
