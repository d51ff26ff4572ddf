"""
A total deadline for HTTP exchanges over ``requests``: connect, headers and body together.

``requests``' ``timeout`` bounds each socket operation, not the exchange: an answer trickling in one
byte at a time never ends. :class:`DeadlineAdapter` makes ``urllib3`` register each connection it uses
with the exchange running in the current thread (:func:`total_deadline`); when the deadline passes,
the connection's socket is shut down, which ends whatever read or write is waiting on it. One daemon
thread per process watches every deadline (a timer thread per exchange cost ~0.5 ms, a fifth of a
loopback call).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager, ProxyManager

_current = threading.local()


class Exchange:
    """The connections of one HTTP exchange; :meth:`expire` shuts their sockets."""

    def __init__(self) -> None:
        self.expired = False
        self.finished = False
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []

    def add(self, connection: HTTPConnection) -> None:
        """Watch ``connection``; shut it at once if the deadline already passed."""
        with self._lock:
            self._connections.append(connection)
            if self.expired:
                _shut(connection)

    def expire(self) -> None:
        """The deadline passed: shut every socket of the exchange, unless it finished already."""
        with self._lock:
            if self.finished:
                return
            self.expired = True
            for connection in self._connections:
                _shut(connection)

    def finish(self) -> None:
        """The exchange is over: its deadline no longer applies."""
        with self._lock:
            self.finished = True


def _shut(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with suppress(OSError):  # the plain socket's shutdown, also under TLS: it wakes a blocked reader
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread that expires each watched exchange whose deadline passed before it finished."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._deadlines: list[tuple[float, int, Exchange]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, exchange: Exchange, seconds: float) -> None:
        """Expire ``exchange`` in ``seconds`` unless it is ``finished`` by then."""
        entry = (time.monotonic() + seconds, next(self._order), exchange)
        with self._condition:
            heapq.heappush(self._deadlines, entry)
            if self._thread is None or not self._thread.is_alive():  # first use, or a forked child
                self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
                self._thread.start()
            if self._deadlines[0] is entry:  # due before the one the thread waits for
                self._condition.notify()

    def _run(self) -> None:
        while True:
            due = []
            with self._condition:
                now = time.monotonic()
                while self._deadlines and (self._deadlines[0][2].finished or self._deadlines[0][0] <= now):
                    due.append(heapq.heappop(self._deadlines)[2])
                if not due:
                    wait = self._deadlines[0][0] - now if self._deadlines else None
                    self._condition.wait(wait)
            for exchange in due:
                exchange.expire()


_WATCHDOG = _Watchdog()


@contextmanager
def total_deadline(seconds: float) -> Iterator[Exchange]:
    """
    Bound the HTTP exchanges the current thread makes in the block to ``seconds`` in all.

    Use with a session mounted on :class:`DeadlineAdapter`. After the deadline, the request fails
    with a ``requests`` connection or read error and the yielded :class:`Exchange` says ``expired``.

    :param seconds: time the block's exchange may take, connect, headers and body included
    """
    exchange = Exchange()
    _current.exchange = exchange
    _WATCHDOG.watch(exchange, seconds)
    try:
        yield exchange
    finally:
        exchange.finish()
        _current.exchange = None


def _register(connection: HTTPConnection) -> None:
    exchange: Exchange | None = getattr(_current, "exchange", None)
    if exchange is not None:
        exchange.add(connection)


class _DeadlineHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _register(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _DeadlineHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _register(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _DeadlineHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections obey :func:`total_deadline` (proxied ones too, SOCKS aside)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):
            manager.pool_classes_by_scheme = _POOLS
        return manager
