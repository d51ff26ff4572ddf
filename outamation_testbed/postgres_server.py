"""
Debian's PostgreSQL as a throw-away, unprivileged server on a free 127.0.0.1 port.

``initdb`` refuses to run as root; when the tests run as root (CI) the cluster is created and
served as the ``postgres`` system user (the Debian package creates it) in a temporary directory
that user owns. The server listens on 127.0.0.1 only, with its Unix socket in that directory;
clients from 127.0.0.1 are trusted (a loopback-only test database without a password).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
_SYSTEM_USER = "postgres"


def postgres_available(bin_dir: Path = POSTGRES_BIN) -> bool:
    """Whether Debian's PostgreSQL server binaries are installed."""
    return os.access(bin_dir / "initdb", os.X_OK) and os.access(bin_dir / "pg_ctl", os.X_OK)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """
    A PostgreSQL cluster in a temporary directory, served by ``pg_ctl`` on 127.0.0.1.

    :param database: the database to create for the client (owned by the superuser ``user``)
    :param user: the cluster's superuser, the client's login
    :param max_connections: PostgreSQL's ``max_connections``
    :param bin_dir: where ``initdb``, ``pg_ctl`` and ``createdb`` are
    """

    def __init__(
        self,
        database: str = "airflow",
        user: str = "airflow",
        max_connections: int = 300,
        bin_dir: Path = POSTGRES_BIN,
    ) -> None:
        if not postgres_available(bin_dir):
            raise RuntimeError(
                f"PostgreSQL server not found in {bin_dir}: install it with 'apt-get install postgresql'"
            )
        self.database = database
        self.user = user
        self.max_connections = max_connections
        self.bin_dir = bin_dir
        self.port = 0
        self._tempdir = Path(tempfile.mkdtemp(prefix="outamation-postgres-"))
        self.data_dir = self._tempdir / "data"
        self.log_path = self._tempdir / "postgres.log"
        self._account = pwd.getpwnam(_SYSTEM_USER) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        os.chown(self._tempdir, self._account.pw_uid, self._account.pw_gid)
        os.chmod(self._tempdir, 0o700)
        self._initialised = False

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the database (psycopg2 driver)."""
        return f"postgresql+psycopg2://{self.user}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        run_as: dict[str, object] = {}
        if os.geteuid() == 0:
            run_as = {"user": self._account.pw_uid, "group": self._account.pw_gid, "extra_groups": []}
        result = subprocess.run(  # type: ignore[call-overload]
            command,
            cwd=self._tempdir,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            **run_as,
        )
        if result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")[-2000:]
            raise RuntimeError(f"{args[0]} failed (exit {result.returncode}): {output}")

    def start(self) -> PostgresServer:
        """Create the cluster (first time), start the server and create the database."""
        self.port = self.port or _free_port()
        if not self._initialised:
            self._run("initdb", "-D", str(self.data_dir), "-U", self.user, "-A", "trust", "-E", "UTF8")
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self._tempdir} "
            f"-c max_connections={self.max_connections} -c fsync=off -c full_page_writes=off"
        )
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-o", options, "-w", "start")
        if not self._initialised:
            self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, self.database)
            self._initialised = True
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected); ``start()`` serves it again."""
        if self.data_dir.joinpath("postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        """Stop the server and remove the cluster."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self._tempdir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
