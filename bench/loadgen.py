"""Measure median latency and throughput of one URL: wrk when installed, else a small Python client.

Latency is measured with one connection (each request waits for the previous answer: the time a request
takes, without a queue); throughput with several, saturating the server. Under saturation a median
latency mostly measures the queue, and how the load generator's connections happened to land on the
workers."""

from __future__ import annotations

import http.client
import re
import shutil
import statistics
import subprocess
import threading
import time
from urllib.parse import urlsplit

LATENCY_CONNECTIONS = 1
THROUGHPUT_CONNECTIONS = 4


def measure(url: str, seconds: float, connections: int) -> tuple[float, float]:
    """(median latency in ms, requests per second) over `seconds` with `connections` connections."""
    if shutil.which("wrk"):
        return _wrk(url, seconds, connections)
    return _python(url, seconds, connections)


def _wrk(url: str, seconds: float, connections: int) -> tuple[float, float]:
    out = subprocess.run(
        [
            "wrk",
            f"-t{min(2, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return float(p50.group(1)) * scale, float(rps.group(1))


def _python(url: str, seconds: float, connections: int) -> tuple[float, float]:
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        mine = []
        while time.monotonic() < deadline:
            started = time.perf_counter()
            conn.request("GET", path)
            conn.getresponse().read()
            mine.append((time.perf_counter() - started) * 1000)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statistics.median(latencies), len(latencies) / seconds
