"""What every local SFTP test server offers: address, credentials, files and an Airflow connection."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

ServerT = TypeVar("ServerT", bound="SftpTestServer")


class SftpTestServer:
    """
    Common surface of the local SFTP servers in :mod:`airflow_outamation.testing`.

    A server serves the local directory ``root``; the SFTP path ``/a/b`` is ``root / "a/b"``.
    Files a test puts there with :meth:`write` belong to the user the server runs as, so the
    server may rename and delete them.
    """

    kind = "base"
    host = "127.0.0.1"

    def __init__(self, root: str | os.PathLike[str] | None, username: str, password: str | None) -> None:
        # One temporary directory holds the server's keys and config ("work") and, unless the
        # caller chose one, the served files ("root"); close() removes it.
        self._tempdir = tempfile.mkdtemp(prefix=f"outamation-{self.kind}-")
        os.chmod(self._tempdir, 0o755)
        self._workdir = os.path.join(self._tempdir, "work")
        os.mkdir(self._workdir, 0o755)
        self.root = Path(root) if root is not None else Path(self._tempdir) / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.username = username
        self.password = password
        self.port = 0
        self.host_key_line = ""
        self.client_key_path = ""
        self.owner_uid = os.geteuid()
        self.owner_gid = os.getegid()

    def start(self) -> SftpTestServer:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def drop_connections(self) -> None:
        """Abort every open client connection."""
        raise NotImplementedError

    def connections_opened(self) -> int:
        """SSH connections the server accepted since it was created."""
        raise NotImplementedError

    def connections_active(self) -> int:
        """SSH connections open right now."""
        raise NotImplementedError

    def connection_attempts(self) -> int:
        """SSH connections clients opened since the server was created, authenticated or not."""
        raise NotImplementedError

    def restart(self) -> None:
        """Stop and start again on the same port; every client connection is dropped."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its temporary files (``root`` too, unless the caller gave it)."""
        shutil.rmtree(self._tempdir, ignore_errors=True)

    def __enter__(self: ServerT) -> ServerT:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def remote_path(self, relative: str) -> str:
        """The SFTP path of a path relative to ``root``."""
        return "/" + relative.lstrip("/")

    def local_path(self, remote_path: str) -> Path:
        """The local file behind an SFTP path."""
        return self.root / remote_path.lstrip("/")

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0 and (self.owner_uid, self.owner_gid) != (0, 0):
            os.chown(path, self.owner_uid, self.owner_gid)

    def makedirs(self, remote_dir: str) -> Path:
        """Create a directory (and its parents) on the server, owned by the server's user."""
        target = self.local_path(remote_dir)
        missing = []
        current = target
        while not current.exists():
            missing.append(current)
            current = current.parent
        target.mkdir(parents=True, exist_ok=True)
        for path in missing:
            self._chown(path)
        return target

    def write(self, remote_path: str, data: bytes = b"%PDF-1.7\n") -> Path:
        """Create a file on the server (and its directories), owned by the server's user."""
        target = self.local_path(remote_path)
        self.makedirs(str(Path(remote_path).parent))
        target.write_bytes(data)
        self._chown(target)
        return target

    @contextmanager
    def growing_file(self, remote_path: str, interval: float = 0.05) -> Iterator[Path]:
        """
        A file an uploader is still writing: it grows every ``interval`` seconds until the block ends.

        :param remote_path: SFTP path of the file, created with a PDF header
        :param interval: seconds between appends
        """
        path = self.write(remote_path, b"%PDF-1.7\n")
        stop = threading.Event()

        def append() -> None:
            while not stop.wait(interval):
                with path.open("ab") as handle:
                    handle.write(os.urandom(256))

        writer = threading.Thread(target=append, name=f"growing {remote_path}", daemon=True)
        writer.start()
        try:
            yield path
        finally:
            stop.set()
            writer.join()

    def connection_dict(self, *, with_host_key: bool = True, **extra: Any) -> dict[str, Any]:
        """An Airflow ``sftp`` connection for this server, as a dict of connection fields."""
        extras: dict[str, Any] = {"key_file": self.client_key_path, "look_for_keys": "false"}
        if with_host_key:
            extras["host_key"] = self.host_key_line
        extras.update(extra)
        conn: dict[str, Any] = {
            "conn_type": "sftp",
            "host": self.host,
            "port": self.port,
            "login": self.username,
            "extra": extras,
        }
        if self.password is not None:
            conn["password"] = self.password
        return conn

    def connection_json(self, **kwargs: Any) -> str:
        """The connection as JSON, as ``AIRFLOW_CONN_<ID>`` takes it."""
        return json.dumps(self.connection_dict(**kwargs))
