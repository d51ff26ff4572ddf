"""Launch Debian's OpenSSH ``sshd`` as an unprivileged child process serving SFTP on 127.0.0.1."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from airflow_outamation.testing.process_server import ProcessSftpServer, unprivileged_account

SSHD_PATH = "/usr/sbin/sshd"


class SshdNotInstalledError(RuntimeError):
    """Raised when OpenSSH's ``sshd`` is not installed."""


def sshd_available(path: str = SSHD_PATH) -> bool:
    """Whether OpenSSH's server binary is installed."""
    return os.access(path, os.X_OK)


class OpenSshServer(ProcessSftpServer):
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
    attempt_line = re.compile(r"Connection from \S+ port \d+ on ")
    opened_line = re.compile(r"Accepted publickey for ")

    def __init__(self, root: str | os.PathLike[str] | None = None, sshd_path: str = SSHD_PATH) -> None:
        if not sshd_available(sshd_path):
            raise SshdNotInstalledError(
                f"OpenSSH server not found at {sshd_path}: install it with "
                "'apt-get install openssh-server' (Debian/Ubuntu)"
            )
        super().__init__(root, unprivileged_account().pw_name, None)
        self._sshd_path = sshd_path
        self._config_path = self._make_keys() / "sshd_config"

    def _command(self) -> Sequence[str]:
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
        return [self._sshd_path, "-D", "-e", "-f", str(self._config_path)]
