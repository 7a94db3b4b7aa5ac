"""``service.http11`` over real TCP and TLS: keep-alive, timeouts from the kernel, and TLS failures."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import pytest
import trustme

from service import http11
from service.keepalive import closed_by_peer

ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@contextmanager
def server(*, ca: trustme.CA | None, mode: str = "answer", names: tuple[str, ...] = ("localhost",)) -> Iterator[int]:
    """A server on 127.0.0.1: ``answer`` every request head with ANSWER, or stay ``silent``, or ``no_tls``."""
    listener = socket.create_server(("127.0.0.1", 0))
    context = None
    if ca is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(*names).configure_cert(context)
    stop = threading.Event()
    accepted: list[socket.socket] = []

    def serve(conn: socket.socket) -> None:
        try:
            if context is not None and mode != "no_tls":
                conn = context.wrap_socket(conn, server_side=True)
            accepted.append(conn)
            data = b""
            while not stop.is_set():
                if mode != "answer":
                    time.sleep(0.05)
                    continue
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
                while b"\r\n\r\n" in data:
                    _, data = data.split(b"\r\n\r\n", 1)
                    conn.sendall(ANSWER)
        except OSError:
            return

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()
        for conn in accepted:
            with suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv
            conn.close()


def get(channel: http11.Channel) -> http11.Answer:
    return http11.exchange(channel, http11.head("GET", "/v1/x", [("Host", "localhost")]), None, method="GET")


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_answers_on_one_kept_connection(ca: trustme.CA, tls: bool) -> None:
    with server(ca=ca if tls else None) as port:
        channel = http11.Channel.open("localhost", port, context=client_context(ca) if tls else None, timeout=5.0)
        try:
            for _ in range(3):
                answer = get(channel)
                assert (answer.status, answer.content, answer.will_close) == (200, b'{"ok":true}', False)
                assert not closed_by_peer(channel)
        finally:
            channel.close()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_an_answer_that_never_comes_times_out(ca: trustme.CA, tls: bool) -> None:
    """The kernel's receive timeout ends the wait with TimeoutError, as a socket in timeout mode would."""
    with server(ca=ca if tls else None, mode="silent") as port:
        channel = http11.Channel.open("localhost", port, context=client_context(ca) if tls else None, timeout=5.0)
        channel.set_timeouts(read=0.3, write=0.3)
        started = time.monotonic()
        try:
            with pytest.raises(TimeoutError):
                get(channel)
        finally:
            channel.close()
        assert 0.25 < time.monotonic() - started < 3


def test_a_server_that_never_shakes_hands_times_out(ca: trustme.CA) -> None:
    with server(ca=ca, mode="no_tls") as port:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            http11.Channel.open("localhost", port, context=client_context(ca), timeout=0.3)
        assert time.monotonic() - started < 3


def test_a_certificate_for_another_name_is_refused(ca: trustme.CA) -> None:
    with server(ca=ca, names=("other.example",)) as port, pytest.raises(ssl.SSLCertVerificationError):
        http11.Channel.open("localhost", port, context=client_context(ca), timeout=5.0)


def test_a_certificate_from_another_ca_is_refused(ca: trustme.CA) -> None:
    with server(ca=ca) as port, pytest.raises(ssl.SSLCertVerificationError):
        http11.Channel.open("localhost", port, context=client_context(trustme.CA()), timeout=5.0)


def test_a_kept_connection_the_server_closed_reads_as_closed(ca: trustme.CA) -> None:
    with server(ca=ca) as port:
        channel = http11.Channel.open("localhost", port, context=client_context(ca), timeout=5.0)
        get(channel)
    # the server's stop closed its side
    deadline = time.monotonic() + 5
    while not closed_by_peer(channel) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert closed_by_peer(channel)
    channel.close()
