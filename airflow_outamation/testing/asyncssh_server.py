"""An in-process asyncssh SFTP server on 127.0.0.1, for tests, the demo and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import asyncssh

from airflow_outamation.testing.server_base import SftpTestServer


class _Counters:
    """Connections seen by the server: what the tests count on the server side."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.opened = 0
        self.active: set[asyncssh.SSHServerConnection] = set()
        self.drops_during_auth = 0


class _AuthServer(asyncssh.SSHServer):
    """Password and public-key authentication for one user; counts connections."""

    def __init__(self, username: str, password: str | None, counters: _Counters) -> None:
        self._username = username
        self._password = password
        self._counters = counters
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        with self._counters.lock:
            self._counters.opened += 1
            self._counters.active.add(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        with self._counters.lock:
            self._counters.active.discard(self._conn)

    def begin_auth(self, username: str) -> bool:
        with self._counters.lock:
            drop = self._counters.drops_during_auth > 0
            self._counters.drops_during_auth -= drop
        if drop and self._conn is not None:
            self._conn.abort()  # gone before answering the first credentials, as a restarting server is
        return True

    def password_auth_supported(self) -> bool:
        return self._password is not None

    def validate_password(self, username: str, password: str) -> bool:
        return username == self._username and password == self._password

    def public_key_auth_supported(self) -> bool:
        return True


class AsyncsshSftpServer(SftpTestServer):
    """
    A real SFTP server (asyncssh) serving a local directory on a free 127.0.0.1 port.

    It runs its own event loop in a background thread, so synchronous code (paramiko, Airflow
    hooks) and asyncio code (triggers) can both talk to it. Paths on the server are relative to
    ``root`` (``/`` is ``root``).

    :param root: local directory to serve; a temporary one when not given
    :param username: the one user that may log in
    :param password: that user's password (``None`` disables password authentication)
    """

    kind = "asyncssh"

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        username: str = "outamation",
        password: str | None = "s3cret-pass",
    ) -> None:
        super().__init__(root, username, password)
        self._host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key_line = " ".join(self._host_key.export_public_key().decode().split()[:2])
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key_path = str(Path(self._workdir) / "client_key")
        client_key.write_private_key(self.client_key_path, format_name="openssh")
        os.chmod(self.client_key_path, 0o600)
        self._authorized = asyncssh.import_authorized_keys(client_key.export_public_key().decode())
        self._counters = _Counters()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def start(self) -> AsyncsshSftpServer:
        """Start listening (on the previous port after a ``stop()``, so clients can reconnect)."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(
                target=self._loop.run_forever, name="asyncssh-sftp-server", daemon=True
            )
            self._thread.start()
        self._acceptor = self._run(self._listen())
        self.port = self._acceptor.get_port()
        return self

    async def _listen(self) -> asyncssh.SSHAcceptor:
        root = os.fsencode(self.root)
        return await asyncssh.listen(
            "127.0.0.1",
            self.port or 0,
            server_host_keys=[self._host_key],
            authorized_client_keys=self._authorized,
            server_factory=lambda: _AuthServer(self.username, self.password, self._counters),
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=root),
            allow_scp=False,
            reuse_address=True,
        )

    def drop_during_authentication(self, count: int = 1) -> None:
        """
        Abort the next ``count`` connections when they begin to authenticate, before any answer.

        :param count: how many connections to drop that way
        """
        with self._counters.lock:
            self._counters.drops_during_auth = count

    def drop_connections(self) -> None:
        """Abort every open client connection, as a network failure or a server crash would."""
        with self._counters.lock:
            conns = list(self._counters.active)
        for conn in conns:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(conn.abort)

    async def _close_acceptor(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None

    def stop(self) -> None:
        """Stop listening and drop every connection; ``start()`` again serves the same port."""
        if self._loop is None:
            return
        self.drop_connections()
        self._run(self._close_acceptor())

    def close(self) -> None:
        """Stop the server and its event loop thread."""
        if self._loop is None:
            return
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)
        with contextlib.suppress(Exception):
            self._loop.close()
        self._loop = None
        super().close()

    def connections_opened(self) -> int:
        with self._counters.lock:
            return self._counters.opened

    def connection_attempts(self) -> int:
        return self.connections_opened()  # counted when the connection is made, before authentication

    def connections_active(self) -> int:
        with self._counters.lock:
            return len(self._counters.active)

    def active_ciphers(self) -> set[str]:
        """The ciphers the clients of the open connections negotiated for what they send."""
        with self._counters.lock:
            return {str(conn.get_extra_info("recv_cipher")) for conn in self._counters.active}
