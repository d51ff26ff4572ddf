"""Launch Debian's OpenSSH ``sshd`` as an unprivileged child process serving SFTP on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from airflow_outamation.testing.processes import end_process
from airflow_outamation.testing.server_base import SftpTestServer

SSHD_PATH = "/usr/sbin/sshd"
_UNPRIVILEGED_USER = "nobody"


class SshdNotInstalledError(RuntimeError):
    """Raised when OpenSSH's ``sshd`` is not installed."""


def sshd_available(path: str = SSHD_PATH) -> bool:
    """Whether OpenSSH's server binary is installed."""
    return os.access(path, os.X_OK)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OpenSshServer(SftpTestServer):
    """
    A real OpenSSH ``sshd`` (``-D -e``) with ``internal-sftp`` on a free 127.0.0.1 port.

    sshd runs as an unprivileged user: the current one, or ``nobody`` when the tests run as root,
    so that file permissions are enforced as on a real server. An unprivileged sshd can only log
    in the user it runs as, and only with a public key (it cannot read password hashes), so the
    connection it gives uses ``key_file``; ``password`` is ``None``. Paths are absolute on the
    local disk; ``root`` is a fresh directory owned by that user.

    :param root: local directory for test files; a temporary one when not given
    :param sshd_path: the ``sshd`` binary
    """

    kind = "openssh"

    def __init__(self, root: str | os.PathLike[str] | None = None, sshd_path: str = SSHD_PATH) -> None:
        if not sshd_available(sshd_path):
            raise SshdNotInstalledError(
                f"OpenSSH server not found at {sshd_path}: install it with "
                "'apt-get install openssh-server' (Debian/Ubuntu)"
            )
        as_root = os.geteuid() == 0
        account = pwd.getpwnam(_UNPRIVILEGED_USER) if as_root else pwd.getpwuid(os.geteuid())
        super().__init__(root, account.pw_name, None)
        self.owner_uid, self.owner_gid = account.pw_uid, account.pw_gid
        self._chown(self.root)
        self._sshd_path = sshd_path
        self._process: subprocess.Popen[bytes] | None = None
        self._log_lines: list[str] = []
        self._log_lock = threading.Lock()
        self._prepare_keys_and_config()

    def local_path(self, remote_path: str) -> Path:
        """sshd serves the real file system: the SFTP path is the local path."""
        return Path(remote_path)

    def remote_path(self, relative: str) -> str:
        """The SFTP path of a path relative to ``root``."""
        return str(self.root / relative.lstrip("/"))

    def _prepare_keys_and_config(self) -> None:
        work = Path(self._workdir)
        for name in ("host_key", "client_key"):
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    f"outamation-{name}",
                    "-f",
                    work / name,
                ],
                check=True,
            )
        self.host_key_line = " ".join((work / "host_key.pub").read_text().split()[:2])
        self.client_key_path = str(work / "client_key")
        shutil.copy(work / "client_key.pub", work / "authorized_keys")
        for name in ("host_key", "authorized_keys"):
            self._chown(work / name)
        self._config_path = work / "sshd_config"

    def _write_config(self) -> None:
        work = Path(self._workdir)
        self._config_path.write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"HostKey {work / 'host_key'}",
                    "PidFile none",
                    "PrintMotd no",
                    f"AuthorizedKeysFile {work / 'authorized_keys'}",
                    f"AllowUsers {self.username}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "UsePAM yes",
                    "StrictModes no",
                    "PermitRootLogin no",
                    "Subsystem sftp internal-sftp",
                    "ForceCommand internal-sftp",
                    "MaxStartups 200",
                    "MaxSessions 50",
                    "LogLevel VERBOSE",
                    "",
                ]
            )
        )

    def _run_as(self) -> dict[str, object]:
        if os.geteuid() != 0:
            return {}
        return {"user": self.owner_uid, "group": self.owner_gid, "extra_groups": []}

    def start(self) -> OpenSshServer:
        """Start sshd and wait until it accepts connections (on the previous port after ``stop()``)."""
        self.port = self.port or _free_port()
        self._write_config()
        self._process = subprocess.Popen(  # type: ignore[call-overload]
            [self._sshd_path, "-D", "-e", "-f", str(self._config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
            **self._run_as(),
        )
        threading.Thread(target=self._read_log, args=(self._process,), daemon=True).start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"sshd exited at start (code {self._process.returncode}): {self.log_text()}"
                )
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port} within 15 s: {self.log_text()}")

    def _read_log(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stderr is not None
        for raw in process.stderr:
            with self._log_lock:
                self._log_lines.append(raw.decode(errors="replace").rstrip())

    def log_text(self) -> str:
        """What sshd logged so far."""
        with self._log_lock:
            return "\n".join(self._log_lines)

    @staticmethod
    def _children_of(pid: int) -> list[int]:
        try:
            return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            return []

    def _children(self) -> list[int]:
        """The per-connection sshd processes (children of the listener)."""
        return self._children_of(self._process.pid) if self._process is not None else []

    def drop_connections(self) -> None:
        """Kill every per-connection sshd process and its helpers, as a network failure would."""
        pending = self._children()
        while pending:
            pid = pending.pop()
            pending.extend(self._children_of(pid))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop sshd and every connection it serves; ``start()`` again serves the same port."""
        if self._process is None:
            return
        self.drop_connections()
        end_process(self._process)
        self._process = None

    def close(self) -> None:
        """Stop sshd and remove its temporary files."""
        self.stop()
        super().close()

    def connections_opened(self) -> int:
        pattern = re.compile(r"Accepted publickey for ")
        with self._log_lock:
            return sum(1 for line in self._log_lines if pattern.search(line))

    def connections_active(self) -> int:
        return len(self._children())

    def connection_attempts(self) -> int:
        pattern = re.compile(r"Connection from \S+ port \d+ on ")
        with self._log_lock:
            return sum(1 for line in self._log_lines if pattern.search(line))
