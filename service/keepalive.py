"""Idle keep-alive connections (``http11.Channel``) per origin, for the adapters' direct routes (stdlib only).

Vault's transport (``vault/transport.py``) and AI Core's (``aicore/direct.py``) both keep the
connections they finished with, as urllib3's and httpcore's pools did, and both must not
send on one the server has closed meanwhile (an idle timeout at Vault, AI Core or a load
balancer): a kept connection is handed out again only while it is younger than ``expiry``
and its socket is not readable (an idle keep-alive socket that is readable has been closed,
or is sending junk), nor has it received anything past its last answer. The close can still
race with the next send; each adapter decides what that means for its requests.

Looking at the socket is a ``poll`` system call, and every system call lets go of the GIL:
with 64 rotation threads waiting for it, the looking thread then waits its turn again. A
caller whose request is sent once more on a new connection when the kept one turns out closed
(Vault's GETs) may take a connection settled less than ``unchecked_for`` seconds ago without
that look: an idle timeout that short is not one a server or load balancer sets.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Hashable

from service.http11 import Channel


class KeptConnections:
    """Up to ``max_kept`` idle connections per origin, newest first; thread-safe."""

    def __init__(
        self, *, max_kept: int, expiry: float, unchecked_for: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._max = max_kept
        self._expiry = expiry
        self._unchecked_for = unchecked_for
        self._clock = clock
        self._idle: dict[Hashable, list[tuple[Channel, float]]] = {}
        self._lock = threading.Lock()

    def take(self, origin: Hashable, *, resent_if_closed: bool = False) -> Channel | None:
        """A kept connection that is still fresh and still open, or None; stale ones are closed on the way.

        ``resent_if_closed``: the caller sends the request once more on a new connection if this one
        turns out closed, so one settled within ``unchecked_for`` is handed out without polling its socket.
        """
        now = self._clock()
        while True:
            with self._lock:
                kept = self._idle.get(origin)
                if not kept:
                    return None
                connection, since = kept.pop()
            age = now - since
            look = not resent_if_closed or age >= self._unchecked_for
            if age < self._expiry and not closed_by_peer(connection, look=look):
                return connection
            connection.close()

    def settle(self, origin: Hashable, connection: Channel, *, will_close: bool) -> bool:
        """After a whole answer: keep the connection unless the server closes it; False when kept ones were full."""
        if will_close:
            connection.close()
            return True
        with self._lock:
            kept = self._idle.setdefault(origin, [])
            if len(kept) < self._max:
                kept.append((connection, self._clock()))
                return True
        connection.close()
        return False

    def close(self) -> None:
        """Close every kept connection."""
        with self._lock:
            idle, self._idle = self._idle, {}
        for kept in idle.values():
            for connection, _ in kept:
                connection.close()


def closed_by_peer(connection: Channel, *, look: bool = True) -> bool:
    """Whether an idle connection can no longer be used: no socket, bytes past its last answer, or a readable socket.

    ``look=False`` leaves out the socket (a ``poll``): only what is known without a system call.
    """
    if connection.sock is None or connection.buffered:
        return True
    if not look:
        return False
    poller = select.poll()
    poller.register(connection.sock, select.POLLIN)
    return bool(poller.poll(0))
