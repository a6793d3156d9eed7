"""`tagwatch run`: the API (gunicorn) and the collector as two child processes that live and stop together.

Each child runs in its own process group, so the supervisor alone decides when it stops: on SIGINT/SIGTERM
it sends SIGTERM to both, waits up to STOP_SECONDS, then SIGKILLs what is left of each group. When a child
dies on its own, the other is stopped the same way and `run` exits non-zero naming the one that died. On
Linux each child also gets SIGTERM if the supervisor itself is killed (PR_SET_PDEATHSIG): never an orphan.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass

from tagwatch.logs import event
from tagwatch.signals import SignalWatch, signal_name

log = logging.getLogger("tagwatch.run")
STOP_SECONDS = 8.0
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """One supervised process and the name the messages use for it."""

    name: str
    process: subprocess.Popen

    @property
    def pid(self) -> int:
        """The child's pid, which is also its process group id."""
        return self.process.pid

    @property
    def code(self) -> int | None:
        """The exit code once it ended, else None."""
        return self.process.poll()


def run(api: list[str], collector: list[str]) -> int:
    """Start both commands as children and supervise them; returns the exit code of `tagwatch run`."""
    with SignalWatch() as signals:
        children = [start("API", api), start("collector", collector, _collector_env())]
        log.info(
            "started the API (pid %d) and the collector (pid %d)",
            children[0].pid,
            children[1].pid,
            extra=event("children_started", api_pid=children[0].pid, collector_pid=children[1].pid),
        )
        died = None
        while died is None:
            signum = signals.wait(timeout=0.5)
            if signum:
                name = signal_name(signum)
                extra = event("signal_received", signal=name)
                log.info("%s received; stopping the API and the collector", name, extra=extra)
                break
            died = next((child for child in children if child.code is not None), None)
        stopped_cleanly = stop_all(children)
    if died is not None:
        return _report_death(died, children)
    return 0 if stopped_cleanly else 1


def start(name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
    """Start a child in its own process group, set to receive SIGTERM if this process dies."""
    process = subprocess.Popen(args, env=env, process_group=0, preexec_fn=_die_with_parent)
    return Child(name, process)


def stop_all(children: list[Child]) -> bool:
    """SIGTERM to each child, SIGKILL to what is left of its group after STOP_SECONDS; True if none was."""
    for child in children:
        child.process.send_signal(signal.SIGTERM)  # a no-op for one that has exited
    deadline = time.monotonic() + STOP_SECONDS
    for child in children:
        with suppress(subprocess.TimeoutExpired):
            child.process.wait(max(0.0, deadline - time.monotonic()))
    clean = True
    for child in children:
        if child.code is None:
            clean = False
            log.error(
                "the %s did not stop within %.0f s of SIGTERM; killing it",
                child.name,
                STOP_SECONDS,
                extra=event("child_killed", child=child.name, pid=child.pid, outcome="failure"),
            )
        _kill_group(child)  # also any grandchild left behind (a gunicorn worker whose master died)
        child.process.wait()
    return clean


def _report_death(died: Child, children: list[Child]) -> int:
    """One line naming the child that died; exit 2 if it failed to start (its line says why), else 1."""
    code = died.code or 0
    how = f"was killed by {signal_name(-code)}" if code < 0 else f"exited with code {code}"
    others = " and ".join(f"stopped the {c.name}" for c in children if c is not died)
    log.error(
        "the %s %s; %s",
        died.name,
        how,
        others,
        extra=event("child_exited", child=died.name, exit_code=code, outcome="failure"),
    )
    sys.stderr.write(f"tagwatch: run: the {died.name} {how}; {others}\n")
    return 2 if code == 2 else 1


def _kill_group(child: Child) -> None:
    with suppress(ProcessLookupError, PermissionError):  # the group may be empty already
        os.killpg(child.pid, signal.SIGKILL)


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the supervisor dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _collector_env() -> dict[str, str]:
    """The collector is one process: it must not switch prometheus-client to multiprocess mode."""
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env
