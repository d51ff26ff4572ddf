"""
A total deadline for HTTP exchanges over ``requests``: connect, headers and body together.

``requests``' ``timeout`` bounds each socket operation, not the exchange: an answer trickling in one
byte at a time never ends. :class:`DeadlineAdapter` makes ``urllib3`` register each connection it uses
with the exchange running in the current thread (:func:`total_deadline`); when the deadline passes,
the connection's socket is shut down, which ends whatever read or write is waiting on it.
"""

from __future__ import annotations

import socket
import threading
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
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []

    def add(self, connection: HTTPConnection) -> None:
        """Watch ``connection``; shut it at once if the deadline already passed."""
        with self._lock:
            self._connections.append(connection)
            if self.expired:
                _shut(connection)

    def expire(self) -> None:
        """The deadline passed: shut every socket of the exchange."""
        with self._lock:
            self.expired = True
            for connection in self._connections:
                _shut(connection)


def _shut(connection: HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        with suppress(OSError):  # the plain socket's shutdown, also under TLS: it wakes a blocked reader
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextmanager
def total_deadline(seconds: float) -> Iterator[Exchange]:
    """
    Bound the HTTP exchanges the current thread makes in the block to ``seconds`` in all.

    Use with a session mounted on :class:`DeadlineAdapter`. After the deadline, the request fails
    with a ``requests`` connection or read error and the yielded :class:`Exchange` says ``expired``.

    :param seconds: time the block's exchange may take, connect, headers and body included
    """
    exchange = Exchange()
    timer = threading.Timer(seconds, exchange.expire)
    timer.daemon = True
    _current.exchange = exchange
    timer.start()
    try:
        yield exchange
    finally:
        timer.cancel()
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
