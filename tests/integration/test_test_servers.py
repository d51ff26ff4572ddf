"""The test bed itself: both local SFTP servers speak real SFTP to paramiko and to the stock SFTPHook."""

from __future__ import annotations

import base64
import json
import os
import socket

import asyncssh
import paramiko
import pytest
from airflow.providers.sftp.hooks.sftp import SFTPHook

from airflow_outamation.testing.latency_proxy import LatencyProxy
from airflow_outamation.testing.pytest_plugin import set_airflow_connection
from airflow_outamation.testing.server_base import SftpTestServer


def _paramiko_client(
    server: SftpTestServer, host_key_line: str | None = None, **auth: object
) -> paramiko.SSHClient:
    key_type, key_data = (host_key_line or server.host_key_line).split()
    client = paramiko.SSHClient()
    client.get_host_keys().add(
        f"[{server.host}]:{server.port}", key_type, paramiko.Ed25519Key(data=base64.b64decode(key_data))
    )
    auth = auth or {"key_filename": server.client_key_path}
    client.connect(
        server.host, server.port, username=server.username, look_for_keys=False, allow_agent=False, **auth
    )
    return client


def test_paramiko_put_get_list(sftp_server: SftpTestServer, sftp_base: str) -> None:
    client = _paramiko_client(sftp_server)
    try:
        sftp = client.open_sftp()
        with sftp.open(f"{sftp_base}/hello.pdf", "wb") as remote:
            remote.write(b"%PDF-1.7 hello")
        sftp_server.write(f"{sftp_base}/seeded.pdf", b"seeded")
        assert sorted(sftp.listdir(sftp_base)) == ["hello.pdf", "seeded.pdf"]
        with sftp.open(f"{sftp_base}/seeded.pdf", "rb") as remote:
            assert remote.read() == b"seeded"
        assert sftp_server.local_path(f"{sftp_base}/hello.pdf").read_bytes() == b"%PDF-1.7 hello"
    finally:
        client.close()


def test_stock_sftp_hook_put_get_list(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, tmp_path: os.PathLike[str]
) -> None:
    local_in = os.path.join(tmp_path, "in.pdf")
    local_out = os.path.join(tmp_path, "out.pdf")
    payload = os.urandom(300_000)
    with open(local_in, "wb") as handle:
        handle.write(payload)
    hook = SFTPHook(ssh_conn_id=sftp_conn_id)
    hook.store_file(f"{sftp_base}/doc.pdf", local_in)
    assert hook.list_directory(sftp_base) == ["doc.pdf"]
    hook.retrieve_file(f"{sftp_base}/doc.pdf", local_out)
    with open(local_out, "rb") as handle:
        assert handle.read() == payload


def test_server_counts_connections(sftp_server: SftpTestServer) -> None:
    before = sftp_server.connections_opened()
    client = _paramiko_client(sftp_server)
    try:
        client.open_sftp().listdir(sftp_server.remote_path(""))
        assert sftp_server.connections_opened() == before + 1
        assert sftp_server.connections_active() >= 1
    finally:
        client.close()


def test_wrong_host_key_is_rejected(sftp_server: SftpTestServer) -> None:
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    with pytest.raises(paramiko.BadHostKeyException):
        _paramiko_client(sftp_server, host_key_line=" ".join(other_key.split()[:2]))


def test_stock_hook_rejects_wrong_host_key(
    sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    other_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    conn_id = set_airflow_connection(
        monkeypatch,
        "outamation_wrong_host_key",
        sftp_server,
        with_host_key=False,
        host_key=" ".join(other_key.split()[:2]),
    )
    hook = SFTPHook(ssh_conn_id=conn_id, conn_retry_attempts=1)
    with pytest.raises(paramiko.BadHostKeyException):
        hook.list_directory(sftp_server.remote_path(""))


def test_wrong_password_fails_authentication(sftp_server: SftpTestServer) -> None:
    with pytest.raises(paramiko.AuthenticationException):
        _paramiko_client(sftp_server, password="not-the-password")


def test_right_password_logs_in_on_asyncssh(asyncssh_server: SftpTestServer) -> None:
    client = _paramiko_client(asyncssh_server, password=asyncssh_server.password)
    try:
        assert client.get_transport().is_authenticated()  # type: ignore[union-attr]
    finally:
        client.close()


def test_wrong_client_key_fails_authentication(
    sftp_server: SftpTestServer, tmp_path: os.PathLike[str]
) -> None:
    stranger = os.path.join(tmp_path, "stranger_key")
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(stranger)
    with pytest.raises(paramiko.AuthenticationException):
        _paramiko_client(sftp_server, key_filename=stranger)


def test_restart_keeps_port_and_drops_clients(make_sftp_server, sftp_server: SftpTestServer) -> None:
    server = make_sftp_server(sftp_server.kind)
    client = _paramiko_client(server)
    port = server.port
    server.restart()
    transport = client.get_transport()
    assert transport is not None
    transport.join(5)
    assert not transport.is_active()
    assert server.port == port
    with socket.create_connection((server.host, port), timeout=5):
        pass
    again = _paramiko_client(server)
    again.close()
    client.close()


def test_latency_proxy_forwards_a_whole_sftp_session(
    sftp_server: SftpTestServer, sftp_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = os.urandom(300_000)
    sftp_server.write(f"{sftp_base}/big.pdf", payload)
    with LatencyProxy(sftp_server.port, delay=0.002) as proxy:
        conn = sftp_server.connection_dict()
        conn["port"] = proxy.port
        monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_PROXIED", json.dumps(conn))
        hook = SFTPHook(ssh_conn_id="outamation_proxied")
        assert hook.list_directory(sftp_base) == ["big.pdf"]
        with hook.get_managed_conn() as sftp, sftp.open(f"{sftp_base}/big.pdf", "rb") as remote:
            assert remote.read() == payload
