"""A process-wide, thread-safe pool of paramiko SFTP clients, one bounded pool per connection settings."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

import paramiko
from paramiko.message import Message

from airflow_outamation.exceptions import SFTPPoolExhaustedError
from airflow_outamation.name_text import NAME_ENCODING
from airflow_outamation.sftp_pipelining import pipelined_listdir_attr

#: SSH connections one pool keeps open at most (per connection settings).
DEFAULT_POOL_SIZE = 4
#: Seconds a checkout waits for a free client before failing.
DEFAULT_CHECKOUT_TIMEOUT = 30.0


class _ServerNameMessage(Message):
    """An SFTP answer whose names decode like :data:`NAME_ENCODING` (paramiko's own decoding is strict)."""

    def get_text(self) -> str:
        return self.get_string().decode(*NAME_ENCODING)


def decode_name(name: bytes) -> str:
    """A name as the server sent it, as ``str`` (bytes that are not UTF-8 kept, see :data:`NAME_ENCODING`)."""
    return name.decode(*NAME_ENCODING)


class ServerNamesSFTPClient(paramiko.SFTPClient):
    """
    A paramiko SFTP client that takes every name the server sends, UTF-8 or not.

    paramiko decodes names strictly: one ``Rechnung_M\\xfcller.pdf`` (Latin-1) made every listing of
    its folder raise ``UnicodeDecodeError``. Here names are read and paths are sent with
    :data:`NAME_ENCODING`, so a name that does not decode comes back as the same bytes.
    """

    def _adjust_cwd(self, path: str | bytes) -> bytes:
        if isinstance(path, str):
            path = path.encode(*NAME_ENCODING)
        return super()._adjust_cwd(path)  # type: ignore[misc]

    def listdir_attr(self, path: str = ".") -> list[paramiko.SFTPAttributes]:
        """``SFTPClient.listdir_attr`` with its directory reads pipelined (a round trip per ~800 names)."""
        return pipelined_listdir_attr(self, path, decode_name)

    def _read_response(self, waitfor: int | None = None) -> tuple[int | None, Message | None]:
        kind, message = super()._read_response(waitfor)  # type: ignore[misc]
        if message is not None:
            message.__class__ = _ServerNameMessage
        return kind, message


class TrackedSFTPClient(ServerNamesSFTPClient):
    """
    An SFTP client that remembers when its channel failed, even if the caller swallowed the error.

    The stock ``SFTPHook.list_directory``, ``isdir``, ``isfile`` and ``path_exists`` catch every
    ``OSError``; paramiko raises ``OSError("Socket is closed")`` when the connection is gone, so a
    dropped connection came back as ``None`` or ``False``. ``lost`` lets the hook tell.
    """

    lost: Exception | None = None

    def _write_all(self, out: bytes) -> None:
        try:
            super()._write_all(out)  # type: ignore[misc]
        except Exception as exc:
            self.lost = exc
            raise

    def _read_all(self, n: int) -> bytes:
        try:
            return super()._read_all(n)  # type: ignore[misc]
        except Exception as exc:
            self.lost = exc
            raise


@dataclass
class PooledClient:
    """One SSH connection with its SFTP session."""

    ssh: paramiko.SSHClient
    sftp: TrackedSFTPClient

    def is_alive(self) -> bool:
        """Cheap health check: the SSH transport runs and the SFTP channel works (no round trip)."""
        transport = self.ssh.get_transport()
        return (
            transport is not None
            and transport.is_active()
            and not self.sftp.sock.closed
            and self.sftp.lost is None
        )

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
    fewer than ``max_size`` are open; otherwise it waits for a ``checkin``, and fails after
    ``timeout`` seconds saying how many clients were lent (to ``get_conn()``) and never returned.
    """

    max_size: int = DEFAULT_POOL_SIZE
    name: str = ""
    stats: PoolStats = field(default_factory=PoolStats)
    _idle: list[PooledClient] = field(default_factory=list)
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False
    _lent: int = 0

    def checkout(
        self,
        open_client: Callable[[], PooledClient],
        timeout: float = DEFAULT_CHECKOUT_TIMEOUT,
        *,
        lent: bool = False,
    ) -> PooledClient:
        """
        Take a live client, or open one with ``open_client`` (outside the lock).

        :param open_client: opens a new client when the pool may grow
        :param timeout: seconds to wait for a free client
        :param lent: the client goes to a caller that may keep it (``get_conn()``)
        :raises SFTPPoolExhaustedError: no client became free within ``timeout``
        """
        deadline = time.monotonic() + timeout
        collected = False
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
                    self._lent += lent
                    break
                if self._lent and not collected:
                    # Hooks dropped without close_conn() inside a reference cycle return their
                    # clients only when the cycle collector runs.
                    collected = True
                    gc.collect()
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    raise SFTPPoolExhaustedError(
                        f"no pooled SFTP client for connection {self.name!r} became free within "
                        f"{timeout:g} s: all {self.max_size} are in use, {self._lent} of them lent by "
                        "get_conn() and not returned (call close_conn() when done, or use "
                        "get_managed_conn())"
                    )
        try:
            client = open_client()
        except BaseException:
            with self._cond:
                self.stats.in_use -= 1
                self._lent -= lent
                self._cond.notify()
            raise
        with self._cond:
            self.stats.opened += 1
        return client

    def checkin(self, client: PooledClient, *, dead: bool = False, lent: bool = False) -> None:
        """
        Give a client back; a dead one (or any, once the pool is closed) is closed instead.

        :param client: the client of a ``checkout``
        :param dead: the caller saw its connection fail
        :param lent: it was checked out with ``lent=True``
        """
        with self._cond:
            self.stats.in_use -= 1
            self._lent -= lent
            if dead or not client.is_alive():
                client.close()
                self.stats.replaced += 1
            elif self._closed:
                client.close()
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
            pool = self._pools[(conn_id, digest)] = ClientPool(max_size=max_size, name=conn_id)
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
