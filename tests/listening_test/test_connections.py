"""Idle and half-open connections against the real server process, on loopback only.

One client (127.0.0.1) opens many connections that send nothing or half a request line; another
client (127.0.0.2, still loopback) checks that ``/healthz`` keeps answering.
"""

from __future__ import annotations

import http.client
import selectors
import socket
import time
from contextlib import contextmanager

import pytest

from listening_test.cli import build_parser

IDLE_CLIENT = "127.0.0.1"
OTHER_CLIENT = "127.0.0.2"


def serve_default(option: str):
    """The default of a ``serve`` option, as ``--help`` states it."""
    args = build_parser().parse_args(["serve", "--stimuli", "s", "--db", "d"])
    return getattr(args, option)


@contextmanager
def idle_connections(port: int, n: int):
    """``n`` connections from 127.0.0.1; every other one sends an unfinished request, none completes one."""
    socks: list[socket.socket] = []
    try:
        for k in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5.0, source_address=(IDLE_CLIENT, 0))
            socks.append(s)
            if k % 2:
                try:
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line: never ends
                except OSError:
                    pass  # already closed by the server (over the per-client limit): counted below
        yield socks
    finally:
        for s in socks:
            s.close()


def closed_by_server(socks: list[socket.socket], wait_s: float, until: int | None = None) -> set[int]:
    """Indices of the sockets the server closes (EOF or reset) within ``wait_s``; returns early
    once ``until`` (default: all) are closed."""
    closed: set[int] = set()
    until = len(socks) if until is None else until
    deadline = time.monotonic() + wait_s
    with selectors.DefaultSelector() as sel:
        for i, s in enumerate(socks):
            sel.register(s, selectors.EVENT_READ, i)
        while len(closed) < until and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(timeout=left):
                try:
                    data = key.fileobj.recv(4096)
                except (ConnectionResetError, TimeoutError):
                    data = b""
                if not data:
                    closed.add(key.data)
                    sel.unregister(key.fileobj)
    return closed


def healthz(port: int, source: str = OTHER_CLIENT, timeout_s: float = 1.0) -> tuple[int, float]:
    """``GET /healthz`` on a fresh connection from ``source``: ``(status, seconds)``; raises on a time-out."""
    start = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s, source_address=(source, 0))
    try:
        conn.request("GET", "/healthz", headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - start
    finally:
        conn.close()


@pytest.fixture()
def second_loopback_address():
    """127.0.0.2 is loopback on Linux; skip where it cannot be bound."""
    probe = socket.socket()
    try:
        probe.bind((OTHER_CLIENT, 0))
    except OSError as exc:
        pytest.skip(f"cannot bind {OTHER_CLIENT}: {exc}")
    finally:
        probe.close()


def test_150_idle_connections_do_not_stop_healthz(live_server, second_loopback_address):
    """waitress's defaults (connection_limit=100, no per-client limit) stalled /healthz here."""
    server = live_server()  # the defaults of `serve`
    cap = serve_default("max_connections_per_client")
    assert 0 < cap < 150
    with idle_connections(server.port, 150) as socks:
        time.sleep(0.5)  # let the server accept (or refuse) them all
        status, seconds = healthz(server.port)
        assert status == 200 and seconds < 1.0
        # The connections over the client's limit were closed at once; the others stay open.
        closed = closed_by_server(socks, wait_s=10.0, until=150 - cap)
        assert len(closed) == 150 - cap
        assert closed_by_server([s for i, s in enumerate(socks) if i not in closed], wait_s=0.5) == set()
        status, seconds = healthz(server.port)
        assert status == 200 and seconds < 1.0


def test_per_client_limit_frees_up_when_connections_close(live_server):
    server = live_server("--max-connections-per-client", "8")
    with idle_connections(server.port, 12) as socks:
        closed = closed_by_server(socks, wait_s=10.0, until=4)
        assert len(closed) == 4
        assert closed_by_server([s for i, s in enumerate(socks) if i not in closed], wait_s=0.5) == set()
        for s in socks:
            s.close()
    # The same client is served again once its connections are gone.
    deadline = time.monotonic() + 5.0
    while True:
        try:
            status, _ = healthz(server.port, source=IDLE_CLIENT)
            break
        except (OSError, http.client.HTTPException):
            assert time.monotonic() < deadline, "the client stayed locked out after closing its connections"
            time.sleep(0.1)
    assert status == 200


def test_trusted_proxy_is_not_limited_per_client(live_server):
    """Behind a reverse proxy every connection comes from the proxy: it limits per client instead."""
    server = live_server("--max-connections-per-client", "4", "--trusted-proxy", IDLE_CLIENT)
    with idle_connections(server.port, 10) as socks:
        assert closed_by_server(socks, wait_s=1.0) == set()
        status, _ = healthz(server.port, source=IDLE_CLIENT)
        assert status == 200


def test_idle_connections_are_closed_after_the_idle_timeout(live_server):
    server = live_server("--idle-timeout-s", "1")
    with idle_connections(server.port, 4) as socks:
        assert closed_by_server(socks, wait_s=0.5) == set()
        assert closed_by_server(socks, wait_s=10.0) == set(range(4))  # after 1-2 s
