"""Launch ``rclone serve sftp`` (Go's SFTP server family) as an unprivileged child process on 127.0.0.1."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from airflow_outamation.testing.latency_proxy import LatencyProxy
from airflow_outamation.testing.process_server import ProcessSftpServer, free_port

RCLONE_PATH = "/usr/bin/rclone"


def rclone_available(path: str = RCLONE_PATH) -> bool:
    """Whether rclone is installed (Debian's ``rclone``)."""
    return os.access(path, os.X_OK)


class RcloneServer(ProcessSftpServer):
    """
    ``rclone serve sftp`` over a local folder: an SFTP server whose **rename replaces** an existing target.

    The Go SFTP servers (rclone, the ``pkg/sftp`` family, SFTPGo, many cloud-backed services) do not
    refuse a rename onto an existing name as OpenSSH and ProFTPD do. It serves ``root`` as ``/``,
    runs as the unprivileged account, logs in one user by password or public key, and lists
    directories without caching (``--dir-cache-time 0s``) so that files the tests write beside it
    are seen. It cannot drop its clients' connections by itself: clients reach it through a
    forwarding :class:`LatencyProxy` (no delay) that counts and drops them.

    :param root: local directory served as ``/``; a temporary one when not given
    :param password: the user's password
    """

    kind = "rclone"
    serves_root_as_slash = True
    opened_line = re.compile(r"SSH login from \S+ using ")

    def __init__(self, root: str | os.PathLike[str] | None = None, password: str = "s3cret-pass") -> None:
        super().__init__(root, "outamation", password)
        self._make_keys()
        self._backend_port = 0
        self._proxy: LatencyProxy | None = None

    def _listen_port(self) -> int:
        return self._backend_port

    def _command(self) -> Sequence[str]:
        work = Path(self._workdir)
        return [
            RCLONE_PATH,
            "serve",
            "sftp",
            str(self.root),
            "--addr",
            f"127.0.0.1:{self._backend_port}",
            "--user",
            self.username,
            "--pass",
            str(self.password),
            "--key",
            str(work / "host_key"),
            "--authorized-keys",
            str(work / "authorized_keys"),
            "--dir-cache-time",
            "0s",
            "--config",
            str(work / "rclone.conf"),
            "--cache-dir",
            str(work / "cache"),
            "-v",
        ]

    def start(self) -> RcloneServer:
        """Start rclone and its proxy (on the previous port after ``stop()``)."""
        self._backend_port = free_port()
        self.port = self.port or free_port()
        public_port = self.port
        self.port = self._backend_port  # ProcessSftpServer.start() waits on the backend
        try:
            super().start()
        finally:
            self.port = public_port
        self._proxy = LatencyProxy(self._backend_port, 0, port=public_port).start()
        return self

    def stop(self) -> None:
        """Stop the proxy (dropping every connection) and rclone."""
        if self._proxy is not None:
            self._proxy.stop()
            self._proxy = None
        super().stop()

    def drop_connections(self) -> None:
        if self._proxy is not None:
            self._proxy.drop_connections()

    def connections_active(self) -> int:
        return self._proxy.active if self._proxy is not None else 0

    def connection_attempts(self) -> int:
        return self._proxy.accepted if self._proxy is not None else 0
