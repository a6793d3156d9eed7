"""Slow clients cannot starve the API: under the production gunicorn configuration, 20 connections that
trickle their request headers one line a second leave /healthz (and a cached summary) answering at once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from processes import free_port, get, gunicorn_args, running, tagwatch_env, wait_for

from tagwatch import store

TRICKLERS = 20
PROBES = 10


@contextmanager
def trickling(port: int, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections sending a never-ending request header, one short line per second."""
    stop = threading.Event()
    sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]

    def trickle(sock: socket.socket) -> None:
        try:
            sock.sendall(b"GET /api/v1/tags HTTP/1.1\r\nHost: x\r\n")
            line = 0
            while not stop.wait(1.0):
                sock.sendall(b"X-Slow-%d: y\r\n" % line)
                line += 1
        except OSError:
            return

    threads = [threading.Thread(target=trickle, args=(sock,), daemon=True) for sock in sockets]
    for thread in threads:
        thread.start()
    try:
        yield sockets
    finally:
        stop.set()
        for sock in sockets:
            sock.close()


@pytest.mark.slow
def test_trickling_clients_leave_the_api_answering(tmp_path):
    db = tmp_path / "tagwatch.db"
    store.init_db(db)
    port = free_port()
    env = tagwatch_env(db, LOG_LEVEL="WARNING", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    with running(gunicorn_args(port, workers=2), env, tmp_path / "gunicorn.log"):
        base = f"http://127.0.0.1:{port}"
        wait_for(base + "/readyz")
        get(base + "/api/v1/tags")  # warm: the summary comes from the cache
        with trickling(port, TRICKLERS):
            time.sleep(2.5)  # every trickler has sent a few lines: with sync workers both would be stuck
            answered = []
            for _ in range(PROBES):
                started = time.monotonic()
                for url in ("/healthz", "/api/v1/tags"):
                    status, _ = get(base + url)
                    answered.append((url, status, time.monotonic() - started))
                time.sleep(0.2)
    slow = [(url, status, round(took, 2)) for url, status, took in answered if status != 200 or took > 1]
    assert slow == [], f"{len(slow)} of {len(answered)} probes failed or took over 1 s"
