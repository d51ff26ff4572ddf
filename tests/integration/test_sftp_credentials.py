"""The sync (paramiko) and async (asyncssh) hooks accept exactly the same credentials."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync
from airflow_outamation.testing.asyncssh_server import AsyncsshSftpServer
from airflow_outamation.testing.event_loops import run
from airflow_outamation.testing.server_base import SftpTestServer

PASSPHRASE = "  key pass phrase "
SPACED_PASSWORD = "  pass with spaces  "


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def _both_hooks_list(conn_id: str, directory: str) -> tuple[list[str] | None, list[str]]:
    """What the sync hook and the async hook each list in ``directory``."""
    synced = PooledSFTPHook(ssh_conn_id=conn_id).list_directory(directory)
    listed = run(PooledSFTPHookAsync(conn_id).list_directory_states(directory))
    return synced, sorted(listed)


def test_encrypted_key_file_with_passphrase_works_for_both_hooks(
    sftp_server: SftpTestServer, sftp_base: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf")
    encrypted = tmp_path / "encrypted_key"
    asyncssh.read_private_key(sftp_server.client_key_path).write_private_key(
        str(encrypted), passphrase=PASSPHRASE
    )
    os.chmod(encrypted, 0o600)
    conn = sftp_server.connection_dict(key_file=str(encrypted), private_key_passphrase=PASSPHRASE)
    conn.pop("password", None)  # the key alone must log in
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_ENCRYPTED_KEY", json.dumps(conn))

    assert _both_hooks_list("outamation_encrypted_key", sftp_base) == (["a.pdf"], ["a.pdf"])


def test_password_with_surrounding_spaces_works_for_both_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    with AsyncsshSftpServer(password=SPACED_PASSWORD) as server:
        server.write("/in/a.pdf")
        conn = server.connection_dict()
        del conn["extra"]["key_file"]  # the password alone must log in
        monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_SPACED_PASSWORD", json.dumps(conn))

        assert _both_hooks_list("outamation_spaced_password", "/in") == (["a.pdf"], ["a.pdf"])
