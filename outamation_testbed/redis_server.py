"""Debian's ``redis-server`` as a throw-away, unprivileged broker on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from airflow_outamation.testing.processes import end_process

REDIS_SERVER = "/usr/bin/redis-server"
_UNPRIVILEGED_USER = "nobody"


def redis_available(path: str = REDIS_SERVER) -> bool:
    """Whether ``redis-server`` is installed."""
    return os.access(path, os.X_OK)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """
    ``redis-server`` bound to 127.0.0.1 on a free port, without snapshots or an append-only file.

    It runs as the current user, or ``nobody`` when the tests run as root. ``stop()`` then ``start()``
    serves the same port again (an outage of the broker, its queued messages lost as on a crash).

    :param path: the ``redis-server`` binary
    """

    def __init__(self, path: str = REDIS_SERVER) -> None:
        if not redis_available(path):
            raise RuntimeError(
                f"redis-server not found at {path}: install it with 'apt-get install redis-server'"
            )
        self.path = path
        self.port = 0
        self._tempdir = Path(tempfile.mkdtemp(prefix="outamation-redis-"))
        os.chmod(self._tempdir, 0o755)
        self.log_path = self._tempdir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL (database 0)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def _run_as(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        account = pwd.getpwnam(_UNPRIVILEGED_USER)
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def start(self, timeout: float = 15) -> RedisServer:
        """Start the server and wait until it answers ``PING`` (on the previous port after ``stop()``)."""
        self.port = self.port or _free_port()
        command = [
            self.path,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._tempdir),
            "--daemonize", "no",
            "--protected-mode", "yes",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(  # type: ignore[call-overload]
                command,
                cwd=self._tempdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **self._run_as(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {self.log_path.read_text()[-2000:]}")
            if self._ping():
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{self.port} within {timeout:g} s")

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server; every client connection is dropped."""
        if self._process is None:
            return
        end_process(self._process)
        self._process = None

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self._tempdir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
