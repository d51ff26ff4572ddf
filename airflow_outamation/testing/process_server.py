"""What the SFTP test servers run as child processes share: an unprivileged account, a log, connections."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from airflow_outamation.testing.processes import end_process
from airflow_outamation.testing.server_base import SftpTestServer

#: The account a server runs as when the tests run as root, so that file permissions are enforced.
UNPRIVILEGED_USER = "nobody"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unprivileged_account() -> pwd.struct_passwd:
    """``nobody`` when running as root, else the current user."""
    return pwd.getpwnam(UNPRIVILEGED_USER) if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())


class ProcessSftpServer(SftpTestServer):
    """
    An SFTP server run as a child process, as the unprivileged account, on a free 127.0.0.1 port.

    Subclasses give the command line (:meth:`_command`, called after ``port`` is chosen) and the
    log lines that mark a connection attempt and an authenticated connection. Per-connection
    processes (sshd, proftpd) are the listener's children: :meth:`drop_connections` kills them.
    """

    #: A log line of one connection attempt (authenticated or not).
    attempt_line = re.compile(r"$^")
    #: A log line of one authenticated connection.
    opened_line = re.compile(r"$^")
    #: A log file the server writes besides its standard error, if any.
    log_file: Path | None = None
    #: Whether the server shows ``root`` as ``/``; else it serves the real file system (paths are local).
    serves_root_as_slash = False

    def __init__(self, root: str | os.PathLike[str] | None, username: str, password: str | None) -> None:
        super().__init__(root, username, password)
        account = unprivileged_account()
        self.owner_uid, self.owner_gid = account.pw_uid, account.pw_gid
        self._chown(Path(self._tempdir))
        self._chown(Path(self._workdir))
        self._chown(self.root)
        self._process: subprocess.Popen[bytes] | None = None
        self._log_lines: list[str] = []
        self._log_lock = threading.Lock()

    def _command(self) -> Sequence[str]:
        raise NotImplementedError

    def _make_keys(self, authorized_keys: str | None = None) -> Path:
        """
        Create the host key and the client's key, and the file of keys the server authorizes.

        :param authorized_keys: that file's content; the client's public key line when ``None``
        :return: the work folder holding them
        """
        work = Path(self._workdir)
        self.host_key_line = generate_key(work / "host_key")
        client_key = generate_key(work / "client_key")
        self.client_key_path = str(work / "client_key")
        (work / "authorized_keys").write_text(authorized_keys or f"{client_key}\n")
        for name in ("host_key", "authorized_keys"):
            self._chown(work / name)
        return work

    def local_path(self, remote_path: str) -> Path:
        """The local file behind an SFTP path (the same path, unless ``root`` is served as ``/``)."""
        return super().local_path(remote_path) if self.serves_root_as_slash else Path(remote_path)

    def remote_path(self, relative: str) -> str:
        """The SFTP path of a path relative to ``root``."""
        return (
            super().remote_path(relative)
            if self.serves_root_as_slash
            else str(self.root / relative.lstrip("/"))
        )

    def _listen_port(self) -> int:
        """The port the process listens on (the one clients use, unless a subclass puts a proxy first)."""
        return self.port

    def _run_as(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        return {"user": self.owner_uid, "group": self.owner_gid, "extra_groups": []}

    def start(self) -> ProcessSftpServer:
        """Start the server and wait until it accepts connections (on the previous port after ``stop()``)."""
        self.port = self.port or free_port()
        self._process = subprocess.Popen(  # type: ignore[call-overload]
            list(self._command()),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            cwd=self._workdir,
            **self._run_as(),
        )
        threading.Thread(target=self._read_log, args=(self._process,), daemon=True).start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} exited at start (code {self._process.returncode}): {self.log_text()}"
                )
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self._listen_port())) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(
            f"{self.kind} did not listen on 127.0.0.1:{self._listen_port()} within 15 s: {self.log_text()}"
        )

    def _read_log(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            with self._log_lock:
                self._log_lines.append(raw.decode(errors="replace").rstrip())

    def log_text(self) -> str:
        """What the server logged so far (standard error, then its log file)."""
        with self._log_lock:
            text = "\n".join(self._log_lines)
        if self.log_file is not None and self.log_file.exists():
            text = f"{text}\n{self.log_file.read_text(errors='replace')}"
        return text

    def _count(self, pattern: re.Pattern[str]) -> int:
        """Log lines matching ``pattern``, once the log stopped growing (a server logs a connection late)."""
        count = -1
        for _ in range(20):
            previous, count = count, sum(1 for line in self.log_text().splitlines() if pattern.search(line))
            if count == previous:
                break
            time.sleep(0.1)
        return count

    @staticmethod
    def _children_of(pid: int) -> list[int]:
        try:
            return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def _children(self) -> list[int]:
        """The per-connection processes (children of the listener)."""
        return self._children_of(self._process.pid) if self._process is not None else []

    def drop_connections(self) -> None:
        """Kill every per-connection process and its helpers, as a network failure would."""
        pending = self._children()
        while pending:
            pid = pending.pop()
            pending.extend(self._children_of(pid))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server and every connection it serves; ``start()`` again serves the same port."""
        if self._process is None:
            return
        self.drop_connections()
        end_process(self._process)
        self._process = None

    def close(self) -> None:
        """Stop the server and remove its temporary files."""
        self.stop()
        super().close()

    def connections_opened(self) -> int:
        return self._count(self.opened_line)

    def connections_active(self) -> int:
        return len(self._children())

    def connection_attempts(self) -> int:
        return self._count(self.attempt_line)


def generate_key(path: Path) -> str:
    """Create an unencrypted Ed25519 key pair at ``path`` (and ``path.pub``); return the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"outamation-{path.name}", "-f", path],
        check=True,
    )
    return " ".join((path.parent / f"{path.name}.pub").read_text().split()[:2])
