"""A process-wide, thread-safe pool of paramiko SFTP clients, one bounded pool per connection settings."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

import paramiko

#: SSH connections one pool keeps open at most (per connection settings).
DEFAULT_POOL_SIZE = 4


@dataclass
class PooledClient:
    """One SSH connection with its SFTP session."""

    ssh: paramiko.SSHClient
    sftp: paramiko.SFTPClient

    def is_alive(self) -> bool:
        """Cheap health check: the SSH transport runs and the SFTP channel is open (no round trip)."""
        transport = self.ssh.get_transport()
        return transport is not None and transport.is_active() and not self.sftp.sock.closed

    def close(self) -> None:
        with suppress(Exception):
            self.sftp.close()
        with suppress(Exception):
            self.ssh.close()


@dataclass
class PoolStats:
    """Counters of one pool; ``replaced`` counts dead clients closed and not handed out."""

    opened: int = 0
    reused: int = 0
    replaced: int = 0
    in_use: int = 0
    idle: int = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in ("opened", "reused", "replaced", "in_use", "idle")}


@dataclass
class ClientPool:
    """
    A bounded pool of SFTP clients for one connection's settings.

    ``checkout`` hands out a live idle client (most recently used first) or opens a new one while
    fewer than ``max_size`` are open; otherwise it waits for a ``checkin``.
    """

    max_size: int = DEFAULT_POOL_SIZE
    stats: PoolStats = field(default_factory=PoolStats)
    _idle: list[PooledClient] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False

    def checkout(self, open_client: Callable[[], PooledClient], timeout: float = 300) -> PooledClient:
        """Take a live client, or open one with ``open_client`` (outside the lock)."""
        with self._cond:
            while True:
                while self._idle:
                    client = self._idle.pop()
                    self.stats.idle = len(self._idle)
                    if client.is_alive():
                        self.stats.reused += 1
                        self.stats.in_use += 1
                        return client
                    client.close()
                    self.stats.replaced += 1
                if self.stats.in_use < self.max_size:
                    self.stats.in_use += 1
                    break
                if not self._cond.wait(timeout):
                    raise TimeoutError(f"no pooled SFTP client became free within {timeout:g} s")
        try:
            client = open_client()
        except BaseException:
            with self._cond:
                self.stats.in_use -= 1
                self._cond.notify()
            raise
        with self._cond:
            self.stats.opened += 1
        return client

    def checkin(self, client: PooledClient, *, dead: bool = False) -> None:
        """Give a client back; a dead one (or any, once the pool is closed) is closed instead."""
        with self._cond:
            self.stats.in_use -= 1
            if dead or self._closed or not client.is_alive():
                client.close()
                if dead:
                    self.stats.replaced += 1
            else:
                self._idle.append(client)
            self.stats.idle = len(self._idle)
            self._cond.notify()

    def close(self) -> None:
        """Close the idle clients now and the ones in use when they come back."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self.stats.idle = 0
        for client in idle:
            client.close()


class PoolRegistry:
    """The process-wide pools, keyed by ``(conn_id, settings digest)``."""

    def __init__(self) -> None:
        self._pools: dict[tuple[str, str], ClientPool] = {}
        self._lock = threading.Lock()

    def get(self, conn_id: str, digest: str, max_size: int) -> ClientPool:
        """The pool of these settings; pools of older settings of ``conn_id`` are closed."""
        with self._lock:
            pool = self._pools.get((conn_id, digest))
            if pool is not None:
                return pool
            outdated = [key for key in self._pools if key[0] == conn_id]
            retired = [self._pools.pop(key) for key in outdated]
            pool = self._pools[(conn_id, digest)] = ClientPool(max_size=max_size)
        for old in retired:
            old.close()
        return pool

    def close_all(self) -> None:
        """Close and forget every pool."""
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


POOLS = PoolRegistry()
