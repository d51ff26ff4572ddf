"""Bad input fails once, clearly, naming host and path, and never shows a secret."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator

import asyncssh
import pytest
from airflow.sdk.exceptions import AirflowNotFoundException

from airflow_outamation.exceptions import (
    SFTPAuthenticationError,
    SFTPConnectError,
    SFTPHostKeyError,
    SFTPPathError,
)
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.testing.asyncssh_server import AsyncsshSftpServer
from airflow_outamation.testing.pytest_plugin import set_airflow_connection
from airflow_outamation.testing.server_base import SftpTestServer

WRONG_PASSWORD = "wr0ng-Pa55word-xyz"


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def _other_host_key() -> str:
    return " ".join(asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()[:2])


def test_unknown_conn_id_names_it() -> None:
    with pytest.raises(AirflowNotFoundException, match="no_such_sftp_conn"):
        PooledSFTPHook(ssh_conn_id="no_such_sftp_conn").list_directory("/")


def test_wrong_password_fails_once_without_showing_it(
    asyncssh_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    conn = asyncssh_server.connection_dict()
    conn["password"] = WRONG_PASSWORD
    del conn["extra"]["key_file"]
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_BAD_PASSWORD", json.dumps(conn))
    caplog.set_level(logging.DEBUG)
    before = asyncssh_server.connections_opened()
    with pytest.raises(SFTPAuthenticationError) as raised:
        PooledSFTPHook(ssh_conn_id="outamation_bad_password").list_directory("/")
    message = str(raised.value)
    assert f"127.0.0.1:{asyncssh_server.port}" in message
    assert WRONG_PASSWORD not in message
    assert WRONG_PASSWORD not in caplog.text
    assert asyncssh_server.connections_opened() - before == 1


def test_wrong_key_fails_with_authentication_error(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    stranger = os.path.join(tmp_path, "stranger")
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(stranger)
    conn_id = set_airflow_connection(monkeypatch, "outamation_bad_key", sftp_server, key_file=stranger)
    if sftp_server.password is not None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_OUTAMATION_BAD_KEY",
            os.environ["AIRFLOW_CONN_OUTAMATION_BAD_KEY"].replace(sftp_server.password, WRONG_PASSWORD),
        )
    with pytest.raises(SFTPAuthenticationError, match=f"127.0.0.1:{sftp_server.port}"):
        PooledSFTPHook(ssh_conn_id=conn_id).list_directory("/")


def test_changed_host_key_is_rejected(sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    conn_id = set_airflow_connection(
        monkeypatch, "outamation_changed_key", sftp_server, with_host_key=False, host_key=_other_host_key()
    )
    with pytest.raises(SFTPHostKeyError, match=r"does not trust .* differs from the connection's host_key"):
        PooledSFTPHook(ssh_conn_id=conn_id).list_directory("/")


def test_unknown_host_key_is_rejected(sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/nonexistent-home")  # no ~/.ssh/known_hosts to fall back on
    conn_id = set_airflow_connection(monkeypatch, "outamation_unknown_key", sftp_server, with_host_key=False)
    with pytest.raises(SFTPHostKeyError, match="does not trust \\(unknown host key\\)"):
        PooledSFTPHook(ssh_conn_id=conn_id).list_directory("/")


def test_no_host_key_check_connects_with_a_warning(
    asyncssh_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    conn_id = set_airflow_connection(
        monkeypatch, "outamation_no_check", asyncssh_server, with_host_key=False, no_host_key_check="true"
    )
    assert PooledSFTPHook(ssh_conn_id=conn_id).list_directory("/") is not None
    assert "No Host Key Verification" in capfd.readouterr().out


def test_connection_refused(asyncssh_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    conn = asyncssh_server.connection_dict()
    conn["port"] = closed_port
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_REFUSED", json.dumps(conn))
    with pytest.raises(SFTPConnectError, match=f"127.0.0.1:{closed_port}"):
        PooledSFTPHook(ssh_conn_id="outamation_refused").list_directory("/")


def test_a_connection_lost_during_authentication_is_tried_again_not_reported_as_wrong_credentials(
    asyncssh_server: AsyncsshSftpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found on the CeleryExecutor bed: sshd restarted while a sensor connected, and paramiko's
    # "Authentication failed" for the dropped connection failed the task for good as wrong credentials.
    conn = asyncssh_server.connection_dict()
    conn["extra"] = {key: value for key, value in conn["extra"].items() if key != "key_file"}  # password
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_DROPPED", json.dumps(conn))
    os.makedirs(os.path.join(asyncssh_server.root, "dropped"), exist_ok=True)
    asyncssh_server.drop_during_authentication()
    before = asyncssh_server.connections_opened()
    assert "dropped" in PooledSFTPHook(ssh_conn_id="outamation_dropped").list_directory("/")
    assert asyncssh_server.connections_opened() - before == 2  # the dropped one, then one that worked


def test_silent_server_times_out(asyncssh_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts TCP, never speaks SSH
        conn = asyncssh_server.connection_dict()
        conn["port"] = silent.getsockname()[1]
        monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_SILENT", json.dumps(conn))
        hook = PooledSFTPHook(ssh_conn_id="outamation_silent", banner_timeout=1, conn_timeout=1)
        with pytest.raises(SFTPConnectError, match="timed out"):
            hook.list_ready_files("/", stability_delay=0)


def _where(server: SftpTestServer, conn_id: str) -> str:
    """How every error names the server and connection."""
    return f"SFTP server {server.username}@{server.host}:{server.port} (connection {conn_id!r})"


def test_missing_directory_names_host_and_path(sftp_server: SftpTestServer, sftp_conn_id: str) -> None:
    missing = sftp_server.remote_path("no/such/dir")
    with pytest.raises(SFTPPathError) as raised:
        PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_ready_files(missing, stability_delay=0)
    assert str(raised.value) == f"no such file or directory: {missing} on {_where(sftp_server, sftp_conn_id)}"


def test_download_of_a_missing_file_names_host_and_path(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    missing = f"{sftp_base}/missing.pdf"
    with pytest.raises(SFTPPathError) as raised:
        PooledSFTPHook(ssh_conn_id=sftp_conn_id).download_to_temp(missing)  # through asyncssh
    assert str(raised.value) == f"no such file or directory: {missing} on {_where(sftp_server, sftp_conn_id)}"


def test_path_that_is_a_directory(sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str) -> None:
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    with pytest.raises(SFTPPathError, match="is a directory"):
        hook.download_to_temp(sftp_base)
    with pytest.raises(SFTPPathError, match="is a directory"):
        hook.remove_file(sftp_base)
    sftp_server.write(f"{sftp_base}/file.pdf")
    with pytest.raises(SFTPPathError, match="not a directory"):
        hook.list_ready_files(f"{sftp_base}/file.pdf", stability_delay=0)


def test_permission_denied_names_the_path(
    openssh_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = set_airflow_connection(monkeypatch, "outamation_perm", openssh_server)
    locked = openssh_server.remote_path("locked")
    openssh_server.write(f"{locked}/a.pdf")
    os.chmod(openssh_server.local_path(locked), 0o000)
    try:
        with pytest.raises(SFTPPathError, match=f"permission denied: {locked}"):
            PooledSFTPHook(ssh_conn_id=conn_id).list_ready_files(locked, stability_delay=0)
    finally:
        os.chmod(openssh_server.local_path(locked), 0o755)
