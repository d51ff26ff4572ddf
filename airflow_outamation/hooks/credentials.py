"""
One reading of an SFTP connection's login, password and private key, for paramiko and asyncssh alike.

The stock hooks read them differently: ``SSHHook`` (paramiko) strips the password and passes
``key_file`` without its passphrase (``private_key_passphrase`` only unlocks the ``private_key``
extra), while ``SFTPHookAsync`` (asyncssh) keeps the password as typed and unlocks ``key_file``
with the passphrase. So the sensor connected where the claim was refused. Both hooks of this
package take their credentials from :class:`SSHCredentials` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from io import StringIO
from typing import Any

import asyncssh
import paramiko

from airflow_outamation.exceptions import SFTPAuthenticationError

#: paramiko's key class for each key algorithm asyncssh reads.
_PARAMIKO_KEY_TYPES: dict[bytes, type[paramiko.PKey]] = {
    b"ssh-ed25519": paramiko.Ed25519Key,
    b"ssh-rsa": paramiko.RSAKey,
    b"ecdsa-sha2-nistp256": paramiko.ECDSAKey,
    b"ecdsa-sha2-nistp384": paramiko.ECDSAKey,
    b"ecdsa-sha2-nistp521": paramiko.ECDSAKey,
}


@dataclass(frozen=True)
class SSHCredentials:
    """
    Login, password and private key of an SFTP connection, exactly as configured (never stripped).

    :param username: the login
    :param password: the password, spaces included
    :param key_file: path of a private key file (the ``key_file`` extra)
    :param private_key: a private key's text (the ``private_key`` extra); wins over ``key_file``
    :param passphrase: unlocks either key (the ``private_key_passphrase`` or ``passphrase`` extra)
    """

    username: str | None
    password: str | None = field(default=None, repr=False)
    key_file: str | None = None
    private_key: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)

    @classmethod
    def from_connection(
        cls, login: str | None, password: str | None, extra: Mapping[str, Any]
    ) -> SSHCredentials:
        """
        Read the credentials of an Airflow ``sftp`` connection.

        :param login: the connection's login
        :param password: the connection's password
        :param extra: the connection's extra, as a dict
        """
        return cls(
            username=login,
            password=password,
            key_file=extra.get("key_file") or None,
            private_key=extra.get("private_key") or None,
            passphrase=extra.get("private_key_passphrase") or extra.get("passphrase") or None,
        )

    def load_key(self) -> asyncssh.SSHKey | None:
        """
        The private key, unlocked with the passphrase, or ``None`` when there is none.

        :raises SFTPAuthenticationError: the key cannot be read or unlocked
        """
        source = "the private_key extra" if self.private_key else f"key file {self.key_file}"
        try:
            if self.private_key:
                return asyncssh.import_private_key(self.private_key, self.passphrase)
            if self.key_file:
                return asyncssh.read_private_key(self.key_file, self.passphrase)
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError, OSError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise SFTPAuthenticationError(f"cannot use the private key of {source}: {reason}") from None
        return None

    def paramiko_key(self) -> paramiko.PKey | None:
        """
        :meth:`load_key` as a paramiko key (converted in memory, never written to disk).

        :raises SFTPAuthenticationError: the key cannot be read or unlocked, or paramiko cannot use its type
        """
        key = self.load_key()
        if key is None:
            return None
        key_type = _PARAMIKO_KEY_TYPES.get(key.algorithm)
        if key_type is None:
            raise SFTPAuthenticationError(f"paramiko cannot use {key.algorithm.decode()} keys")
        return key_type.from_private_key(StringIO(key.export_private_key("openssh").decode()))
