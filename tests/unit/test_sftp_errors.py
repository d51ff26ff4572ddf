"""hooks/sftp_errors.py: which errors mean a lost connection, and how each condition is worded."""

from __future__ import annotations

import asyncssh
import paramiko
import pytest

from airflow_outamation.exceptions import (
    SFTPAuthenticationError,
    SFTPConnectError,
    SFTPConnectionTypeError,
    SFTPPathError,
)
from airflow_outamation.hooks.sftp_errors import (
    SFTPLocation,
    check_connection_type,
    is_connection_lost,
    translate,
    unreachable_error,
)

WHERE = SFTPLocation("acme", "sftp.example.com", 2222, "outamation_sftp_acme")


def test_a_location_names_user_host_port_and_connection() -> None:
    assert str(WHERE) == "SFTP server acme@sftp.example.com:2222 (connection 'outamation_sftp_acme')"


@pytest.mark.parametrize(
    "error",
    [
        EOFError(),
        ConnectionResetError(),
        TimeoutError(),
        paramiko.SSHException("No existing session"),
        OSError("Socket is closed"),
        asyncssh.SFTPConnectionLost("gone"),
        SFTPConnectError("lost"),
    ],
    ids=repr,
)
def test_connection_lost(error: BaseException) -> None:
    if isinstance(error, SFTPConnectError):
        error.__cause__ = EOFError()
    assert is_connection_lost(error)


@pytest.mark.parametrize(
    "error",
    [FileNotFoundError(2, "No such file"), PermissionError(13, "denied"), asyncssh.SFTPNoSuchFile("x"),
     SFTPConnectError("refused, no cause"), OSError("Failure")],
    ids=repr,
)  # fmt: skip
def test_not_connection_lost(error: BaseException) -> None:
    assert not is_connection_lost(error)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (FileNotFoundError(2, "x"), "no such file or directory: /in on "),
        (asyncssh.SFTPNoSuchFile("x"), "no such file or directory: /in on "),
        (PermissionError(13, "x"), "permission denied: /in on "),
        (asyncssh.SFTPPermissionDenied("x"), "permission denied: /in on "),
    ],
    ids=repr,
)
def test_path_errors_name_the_condition_path_and_server(error: BaseException, expected: str) -> None:
    translated = translate(error, WHERE, "/in")
    assert isinstance(translated, SFTPPathError)
    assert str(translated) == expected + str(WHERE)


def test_credentials_refused_and_timeouts() -> None:
    refused = translate(paramiko.AuthenticationException("bad password hunter2"), WHERE)
    assert isinstance(refused, SFTPAuthenticationError)
    assert "hunter2" not in str(refused)
    timed_out = translate(TimeoutError(), WHERE, timeout=7.5)
    assert str(timed_out) == f"timed out after 7.5 s talking to {WHERE}"


def test_other_errors_are_connection_errors_naming_the_path() -> None:
    error = translate(ConnectionRefusedError(111, "Connection refused"), WHERE, "/in")
    assert isinstance(error, SFTPConnectError)
    assert str(error).startswith(f"could not open or lost the connection to {WHERE} while accessing /in: ")


def test_unreachable_error_says_for_how_long() -> None:
    error = unreachable_error("/in", WHERE, 12.34, EOFError("eof"))
    assert (
        str(error)
        == f"gave up waiting for files in /in: {WHERE} was unreachable for the last 12.3 s of the wait (eof)"
    )


EXPECTED = "expected an 'sftp' (or 'ssh') connection with a host"


@pytest.mark.parametrize(
    ("conn_type", "host", "message"),
    [
        ("http", "h", f"connection 'c' is of type 'http'; {EXPECTED}"),
        ("sftp", None, f"connection 'c' of type 'sftp' has no host; {EXPECTED}"),
    ],
)
def test_connection_type_is_checked(conn_type: str, host: str | None, message: str) -> None:
    with pytest.raises(SFTPConnectionTypeError) as raised:
        check_connection_type("c", conn_type, host)
    assert str(raised.value) == message


@pytest.mark.parametrize("conn_type", ["sftp", "ssh"])
def test_sftp_and_ssh_connections_pass(conn_type: str) -> None:
    check_connection_type("c", conn_type, "h")
