"""``KeptConnections``: which kept connections are handed out again, and when their socket is looked at."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from service import http11
from service.http11 import Channel
from service.keepalive import KeptConnections, closed_by_peer


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def closed_channel() -> Iterator[Channel]:
    """A channel whose peer has hung up: its socket is readable (EOF), so ``closed_by_peer`` says so."""
    ours, theirs = socket.socketpair()
    theirs.close()
    channel = Channel(ours)
    assert closed_by_peer(channel)
    yield channel
    channel.close()


def kept(channel: Channel, clock: Clock) -> KeptConnections:
    connections = KeptConnections(max_kept=2, expiry=60.0, unchecked_for=1.0, clock=clock)
    assert connections.settle("vault", channel, will_close=False)
    return connections


def test_a_request_that_would_not_be_sent_again_always_gets_a_connection_looked_at(closed_channel: Channel) -> None:
    """A POST (a login): the closed connection is noticed before sending, however recently it was kept."""
    clock = Clock()
    connections = kept(closed_channel, clock)
    clock.now += 0.1
    assert connections.take("vault") is None
    assert closed_channel.sock is None  # closed on the way


def test_a_resendable_request_takes_a_recently_kept_connection_unlooked_at(closed_channel: Channel) -> None:
    """A GET within ``unchecked_for``: handed out without a poll (the caller resends it on a new connection)."""
    clock = Clock()
    connections = kept(closed_channel, clock)
    clock.now += 0.5
    assert connections.take("vault", resent_if_closed=True) is closed_channel


def test_past_the_unchecked_window_a_resendable_request_gets_a_connection_looked_at(closed_channel: Channel) -> None:
    clock = Clock()
    connections = kept(closed_channel, clock)
    clock.now += 1.0
    assert connections.take("vault", resent_if_closed=True) is None


def test_a_connection_with_bytes_past_its_answer_is_never_handed_out_unlooked_at() -> None:
    """Bytes received past the last answer (junk, or a late 408): not used, even within the window."""
    ours, theirs = socket.socketpair()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    theirs.sendall(answer + b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    try:
        channel = Channel(ours)
        got = http11.exchange(channel, http11.head("GET", "/v1/sys/health", [("Host", "vault")]), None, method="GET")
        assert (got.status, got.content, channel.buffered > 0) == (200, b"{}", True)
        clock = Clock()
        connections = kept(channel, clock)
        clock.now += 0.1
        assert connections.take("vault", resent_if_closed=True) is None
    finally:
        theirs.close()


def test_an_expired_connection_is_never_handed_out(closed_channel: Channel) -> None:
    clock = Clock()
    connections = KeptConnections(max_kept=2, expiry=60.0, unchecked_for=1.0, clock=clock)
    open_ours, open_theirs = socket.socketpair()
    try:
        fresh = Channel(open_ours)
        connections.settle("vault", fresh, will_close=False)
        clock.now += 61
        assert connections.take("vault", resent_if_closed=True) is None
    finally:
        open_theirs.close()
