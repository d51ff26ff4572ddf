"""sftp_paths.py on every server kind: ``exists`` and ``makedirs`` over a real paramiko client."""

from __future__ import annotations

import pytest

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.sftp_paths import exists, makedirs
from airflow_outamation.testing.server_base import SftpTestServer


def test_exists(sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf")
    with PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_managed_conn() as sftp:
        assert exists(sftp, f"{sftp_base}/a.pdf")
        assert exists(sftp, sftp_base)
        assert not exists(sftp, f"{sftp_base}/missing.pdf")


def test_makedirs_creates_missing_parents_and_accepts_existing_ones(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    with PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_managed_conn() as sftp:
        makedirs(sftp, f"{sftp_base}/in_progress/01152026/.claims/")
        makedirs(sftp, f"{sftp_base}/in_progress/01152026")  # already there: fine
    assert sftp_server.local_path(f"{sftp_base}/in_progress/01152026/.claims").is_dir()


def test_makedirs_through_a_file_fails(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/taken")
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    # each server kind words it differently
    with hook.get_managed_conn() as sftp, pytest.raises(OSError):  # noqa: PT011
        makedirs(sftp, f"{sftp_base}/taken/below")
    assert sftp_server.local_path(f"{sftp_base}/taken").is_file()
