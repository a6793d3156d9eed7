"""Start and stop real tagwatch processes (gunicorn, collector, Prometheus) on 127.0.0.1 for tests."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 30.0, status: int = 200) -> None:
    """Poll `url` until it answers `status` (bounded)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == status:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer {status} within {timeout} s: {last}")


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, bytes]:
    """One HTTP request; returns (status, body) for any status."""
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def tagwatch_env(db_path: Path, **extra: str) -> dict[str, str]:
    """A minimal environment for a tagwatch child process."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TAGWATCH_DB": str(db_path), "LOG_LEVEL": "INFO"}
    env.update(extra)
    return env


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    """`tagwatch ARGS` with text stdout and stderr pipes (read them with communicate())."""
    return subprocess.Popen(
        [sys.executable, "-m", "tagwatch", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def running(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """Run a process with stdout+stderr to `log_path`; SIGINT then SIGKILL on exit."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            stop(process)


def stop(process: subprocess.Popen, timeout: float = 20.0) -> int:
    """Ask the process group to stop (SIGINT), kill it if it does not."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    return process.returncode


def gunicorn_args(port: int, workers: int) -> list[str]:
    """The production gunicorn command line (as `tagwatch serve` runs it), bound to loopback."""
    from tagwatch.cli import gunicorn_command

    return gunicorn_command("127.0.0.1", port, workers)


def metric_total(text: str, name: str, **labels: str) -> float:
    """Sum the samples of `name` whose labels include `labels`, from exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def _parents() -> dict[int, int]:
    """{pid: parent pid} of every live process."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) and fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    return parents


def children(pid: int) -> set[int]:
    """The live processes whose parent is `pid`."""
    return {child for child, parent in _parents().items() if parent == pid}


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, …), from /proc."""
    parents = _parents()
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait until none of `pids` is alive; returns those still alive at the deadline."""
    deadline = time.monotonic() + timeout
    while (left := {pid for pid in pids if alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def signal_a_thread(pid: int, signum: int) -> int:
    """Send `signum` to one thread of `pid` that is not its main thread (tgkill); returns that thread's id.

    This is how the kernel may deliver a process signal anyway; it makes that case certain instead of likely.
    """
    tids = sorted(int(task.name) for task in Path(f"/proc/{pid}/task").iterdir() if int(task.name) != pid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.tgkill(pid, tids[-1], signum) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill({pid}, {tids[-1]}, {signum})")
    return tids[-1]
