"""
SFTP errors of both transports (paramiko and asyncssh) in this package's terms.

One place decides whether an error means the connection went away, and one place words each
condition, with one way of naming the server: ``SFTP server user@host:port (connection 'id')``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import asyncssh
import paramiko
from airflow.providers.sftp.pools.sftp import _is_connection_faulty

from airflow_outamation.exceptions import (
    OutamationError,
    SFTPAuthenticationError,
    SFTPConnectError,
    SFTPConnectionTypeError,
    SFTPHostKeyError,
    SFTPPathError,
)
from airflow_outamation.name_text import printable

#: Airflow connection types whose host, port, login and extras describe an SSH server.
SFTP_CONNECTION_TYPES = ("sftp", "ssh")

NO_SUCH_PATH = "no such file or directory"
PERMISSION_DENIED = "permission denied"
NOT_A_DIRECTORY = "not a directory"
IS_A_DIRECTORY = "is a directory, not a file"


@dataclass(frozen=True)
class SFTPLocation:
    """
    Which server and Airflow connection an error is about; never holds a secret.

    :param username: the login
    :param host: the server's host name or address
    :param port: the server's port
    :param conn_id: the Airflow connection id
    :param role: what the server is to the connection: ``SFTP server``, or ``jump host`` on the way to one
    """

    username: str | None
    host: str | None
    port: int | None
    conn_id: str | None
    role: str = "SFTP server"

    @property
    def address(self) -> str:
        """``user@host:port``."""
        return f"{self.username}@{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.role} {self.address} (connection {self.conn_id!r})"


def path_error(condition: str, path: str, where: SFTPLocation) -> SFTPPathError:
    """
    The error for ``path`` on the server, worded ``<condition>: <path> on <where>``.

    :param condition: what is wrong, e.g. :data:`NO_SUCH_PATH`
    :param path: the remote path
    :param where: the server and connection
    """
    return SFTPPathError(f"{condition}: {printable(path)} on {where}")


def unreachable_error(
    directory: str, where: SFTPLocation, seconds: float, failure: BaseException | None
) -> SFTPConnectError:
    """
    The error of a wait for files that ended while the server was unreachable (never "no files").

    :param directory: the watched directory
    :param where: the server and connection
    :param seconds: how long the server had been unreachable when the wait ended
    :param failure: the last connection error
    """
    return SFTPConnectError(
        f"gave up waiting for files in {directory}: {where} was unreachable for the last "
        f"{seconds:.1f} s of the wait ({failure})"
    )


def check_connection_type(conn_id: str, conn_type: str | None, host: str | None) -> None:
    """
    Fail at once on an Airflow connection that cannot describe an SFTP server.

    :param conn_id: the connection id
    :param conn_type: the connection's type
    :param host: the connection's host (or the hook's ``remote_host`` override)
    :raises SFTPConnectionTypeError: the type is not ``sftp``/``ssh``, or there is no host
    """
    expected = "an 'sftp' (or 'ssh') connection with a host"
    if conn_type not in SFTP_CONNECTION_TYPES:
        raise SFTPConnectionTypeError(f"connection {conn_id!r} is of type {conn_type!r}; expected {expected}")
    if not host:
        raise SFTPConnectionTypeError(
            f"connection {conn_id!r} of type {conn_type!r} has no host; expected {expected}"
        )


def check_route(conn_id: str | None, extra: Mapping[str, Any]) -> str | None:
    """
    The connection's ``jump_host`` extra (the id of another ``sftp``/``ssh`` connection), checked.

    :param conn_id: the connection id
    :param extra: the connection's extras
    :raises SFTPConnectionTypeError: ``jump_host`` is not a connection id, names the connection
        itself, or comes with a ``proxy_command`` (one route per hop: the jump host's own
        connection may set a proxy command)
    """
    jump_host = extra.get("jump_host") or None
    if jump_host is None:
        return None
    if not isinstance(jump_host, str) or jump_host == conn_id:
        raise SFTPConnectionTypeError(
            f"connection {conn_id!r}: jump_host must be the id of another sftp/ssh connection"
        )
    if extra.get("proxy_command"):
        raise SFTPConnectionTypeError(
            f"connection {conn_id!r} sets both jump_host and proxy_command; set one (the jump host's "
            "own connection may set a proxy_command)"
        )
    return jump_host


def is_connection_lost(exc: BaseException) -> bool:
    """
    Whether ``exc`` says the connection went away (and not that the server refused the request).

    :param exc: an error of paramiko, asyncssh, the socket or this package
    """
    if isinstance(exc, SFTPConnectError):  # translated: look at what it was
        return exc.__cause__ is not None and is_connection_lost(exc.__cause__)
    stale_types = (EOFError, paramiko.SSHException, socket.timeout, ConnectionError)
    lost = (asyncssh.DisconnectError, asyncssh.SFTPNoConnection, asyncssh.SFTPConnectionLost)
    if isinstance(exc, (*stale_types, *lost)):
        return True
    # paramiko raises OSError("Socket is closed") on a dead channel; SFTP status errors carry an errno
    # or come as a plain IOError with the server's message, while the transport is still active.
    return isinstance(exc, OSError) and exc.errno is None and "closed" in str(exc).lower()


def translate(
    exc: BaseException, where: SFTPLocation, path: str | None = None, timeout: float | None = None
) -> OutamationError:
    """
    This package's exception for a paramiko, asyncssh or socket error, naming the server and path.

    :param exc: the error
    :param where: the server and connection
    :param path: the remote path the operation was on, if any
    :param timeout: the timeout in force, named in a timeout's message
    """
    if isinstance(exc, OutamationError):  # e.g. a key file that cannot be read
        return type(exc)(f"{where}: {exc}")
    if isinstance(exc, (paramiko.AuthenticationException, asyncssh.PermissionDenied)):
        return SFTPAuthenticationError(f"{where} rejected the connection's credentials")
    untrusted = _untrusted_host_key(exc)
    if untrusted is not None:
        return SFTPHostKeyError(
            f"{where} presented a host key the connection does not trust ({untrusted}): set the "
            "connection's host_key extra to the server's public host key (or add it to known_hosts)"
        )
    if path is not None:
        if isinstance(exc, (FileNotFoundError, asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath)):
            return path_error(NO_SUCH_PATH, path, where)
        if isinstance(exc, (PermissionError, asyncssh.SFTPPermissionDenied)):
            return path_error(PERMISSION_DENIED, path, where)
        if isinstance(exc, asyncssh.SFTPError) and not _is_connection_faulty(exc):
            return path_error(exc.reason, path, where)
    if isinstance(exc, (socket.timeout, TimeoutError, asyncio.TimeoutError)):
        after = f" after {timeout:g} s" if timeout is not None else ""
        return SFTPConnectError(f"timed out{after} talking to {where}")
    if isinstance(exc, paramiko.SSHException) and ("banner" in str(exc) or "No existing session" in str(exc)):
        return SFTPConnectError(f"timed out or cut off in the SSH handshake with {where}")
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    during = f" while accessing {printable(path)}" if path is not None else ""
    return SFTPConnectError(
        f"could not open or lost the connection to {where}{during}: {type(exc).__name__}: {reason}"
    )


def jump_error(exc: BaseException, jump: SFTPLocation, target: SFTPLocation | None = None) -> OutamationError:
    """
    This package's exception for a failure to reach the jump host, naming it (and the server behind it).

    :param exc: the error of the jump hop
    :param jump: the jump host and its connection
    :param target: the server the jump host leads to, when the caller does not name it already
    """
    error = translate(exc, replace(jump, role="jump host"))
    return type(error)(f"{error} (on the way to {target})") if target is not None else error


def beyond_jump_error(
    exc: BaseException, jump_host: str, host: str | None, port: int | None
) -> SFTPConnectError:
    """
    The error of a jump host that could not open a connection on to the server (refused, unreachable).

    :param exc: the jump host's refusal of the forwarded connection
    :param jump_host: the jump host's connection id
    :param host: the server's host, as the jump host sees it
    :param port: the server's port
    """
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    return SFTPConnectError(
        f"jump host (connection {jump_host!r}) could not open a connection to {host}:{port}: "
        f"{type(exc).__name__}: {reason}"
    )


def _untrusted_host_key(exc: BaseException) -> str | None:
    """Why the server's host key was not trusted, or ``None`` when ``exc`` is not about that."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return f"{exc.key.get_name()} {exc.key.fingerprint}, which differs from the connection's host_key"
    if isinstance(exc, paramiko.SSHException) and "known_hosts" in str(exc):
        return "unknown host key"
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return f"unknown or changed host key: {exc.reason}"
    return None
