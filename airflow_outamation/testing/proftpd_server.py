"""Launch Debian's ProFTPD with ``mod_sftp`` as an unprivileged child process serving SFTP on 127.0.0.1."""

from __future__ import annotations

import grp
import os
import pwd
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path

from airflow_outamation.testing.process_server import ProcessSftpServer

PROFTPD_PATH = "/usr/sbin/proftpd"
MOD_SFTP_PATH = "/usr/lib/proftpd/mod_sftp.so"


def proftpd_available(path: str = PROFTPD_PATH) -> bool:
    """Whether ProFTPD and its ``mod_sftp`` are installed (``proftpd-core``, ``proftpd-mod-crypto``)."""
    return os.access(path, os.X_OK) and os.path.exists(MOD_SFTP_PATH)


class ProftpdServer(ProcessSftpServer):
    """
    ProFTPD's ``mod_sftp`` on a free 127.0.0.1 port: another server family (its own SFTP code, not OpenSSH's).

    It runs as the unprivileged account (``nobody`` under root) and logs in one virtual user
    (``AuthUserFile``) with that account's uid, by password or public key. Like OpenSSH's, its
    rename refuses an existing target. Paths are absolute on the local disk.

    :param root: local directory for test files; a temporary one when not given
    :param password: the user's password
    """

    kind = "proftpd"
    attempt_line = re.compile(r"mod_sftp/\S+\[\d+\]: client \(\S+\) connected to server")
    opened_line = re.compile(r"mod_sftp/\S+\[\d+\]: user '\S+' authenticated")

    def __init__(self, root: str | os.PathLike[str] | None = None, password: str = "s3cret-pass") -> None:
        super().__init__(root, "outamation", password)
        work = self._make_keys()
        rfc4716 = subprocess.run(  # ProFTPD reads public keys in RFC 4716 format
            ["ssh-keygen", "-e", "-f", work / "client_key.pub"], check=True, capture_output=True, text=True
        ).stdout
        (work / "authorized_keys").write_text(rfc4716)
        hashed = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"], input=password, check=True, capture_output=True, text=True
        ).stdout.strip()
        (work / "passwd").write_text(
            f"{self.username}:{hashed}:{self.owner_uid}:{self.owner_gid}::{self.root}:/bin/sh\n"
        )
        (work / "group").write_text(f"outamation:x:{self.owner_gid}:\n")
        for name in ("host_key", "authorized_keys", "passwd", "group"):
            os.chmod(work / name, 0o600)
            self._chown(work / name)
        self._config_path = work / "proftpd.conf"
        self.log_file = work / "sftp.log"

    def _command(self) -> Sequence[str]:
        work = Path(self._workdir)
        self._config_path.write_text(
            "\n".join(
                [
                    "<IfModule mod_dso.c>",
                    "  ModulePath /usr/lib/proftpd",
                    "  LoadModule mod_sftp.c",
                    "</IfModule>",
                    "<IfModule mod_ctrls.c>",
                    "  ControlsEngine off",
                    "</IfModule>",
                    "<IfModule mod_delay.c>",
                    "  DelayEngine off",
                    "</IfModule>",
                    'ServerName "outamation-test"',
                    "ServerType standalone",
                    "DefaultServer on",
                    "UseIPv6 off",
                    "UseReverseDNS off",
                    "DefaultAddress 127.0.0.1",
                    f"Port {self.port}",
                    f"User {pwd.getpwuid(self.owner_uid).pw_name}",
                    f"Group {grp.getgrgid(self.owner_gid).gr_name}",
                    f"PidFile {work / 'proftpd.pid'}",
                    f"ScoreboardFile {work / 'proftpd.scoreboard'}",
                    "WtmpLog off",
                    "TransferLog none",
                    "MaxInstances 200",
                    "AuthOrder mod_auth_file.c",
                    f"AuthUserFile {work / 'passwd'}",
                    f"AuthGroupFile {work / 'group'}",
                    "RequireValidShell off",
                    "UseFtpUsers off",
                    "SFTPEngine on",
                    f"SFTPLog {self.log_file}",
                    f"SFTPHostKey {work / 'host_key'}",
                    f"SFTPAuthorizedUserKeys file:{work / 'authorized_keys'}",
                    "SFTPAuthMethods publickey password",
                    "SFTPCompression off",
                    "AllowOverwrite on",
                    "<Limit ALL SITE_CHMOD>",
                    "  AllowAll",
                    "</Limit>",
                    "",
                ]
            )
        )
        self._chown(self._config_path)
        return ["/usr/sbin/proftpd", "--nodaemon", "--quiet", "--config", str(self._config_path)]
