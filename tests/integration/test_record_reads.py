"""A large record (a claim's manifest of 10,000 files) is read in a few round trips at a distance."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from airflow_outamation.claims.records import read_json
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.testing.latency_proxy import LatencyProxy
from airflow_outamation.testing.server_base import SftpTestServer


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def test_a_large_record_is_read_whole_in_a_few_round_trips(
    sftp_server: SftpTestServer, sftp_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read one 8 KiB chunk after another, 0.7 MB cost over 100 round trips (5 s at 50 ms)."""
    manifest = {
        "files": [{"path": f"/p/input/doc{i:05}.pdf", "size": i, "mtime": 1.5e9} for i in range(10000)]
    }
    sftp_server.write(f"{sftp_base}/m.json", json.dumps(manifest, indent=1).encode())
    sftp_server.write(f"{sftp_base}/small.json", b'{"n": 1}')
    with LatencyProxy(sftp_server.port, delay=0.005) as proxy:
        conn = {**sftp_server.connection_dict(), "port": proxy.port}
        monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_FAR", json.dumps(conn))
        with PooledSFTPHook(ssh_conn_id="outamation_far").get_managed_conn() as sftp:
            before = proxy.round_trips
            assert read_json(sftp, f"{sftp_base}/m.json") == manifest
            large = proxy.round_trips - before
            assert read_json(sftp, f"{sftp_base}/small.json") == {"n": 1}
            assert read_json(sftp, f"{sftp_base}/missing.json") is None
    assert large <= 10
