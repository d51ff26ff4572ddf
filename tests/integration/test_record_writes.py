"""Records written many at a time, pipelined, each once: on all four server kinds."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest

from airflow_outamation.claims.records import read_json, read_json_many, write_json_many
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.testing.latency_proxy import LatencyProxy
from airflow_outamation.testing.server_base import SftpTestServer


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def test_many_records_are_written_in_one_call_and_an_existing_one_wins(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/sent/r007.json", b'{"first": true}')
    contents = {f"{sftp_base}/sent/r{i:03}.json": {"n": i, "data": "x" * (i * 700)} for i in range(120)}
    with PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_managed_conn() as sftp:
        stands = write_json_many(sftp, contents)
    assert stands[f"{sftp_base}/sent/r007.json"] == {"first": True}
    for path, content in contents.items():
        on_disk = json.loads(sftp_server.local_path(path).read_bytes())
        assert on_disk == stands[path]
        if not path.endswith("r007.json"):
            assert on_disk == content  # bodies up to 83 KB: written in several chunks
    assert sorted(p.name for p in sftp_server.local_path(f"{sftp_base}/sent").iterdir()) == sorted(
        path.rsplit("/", 1)[1] for path in contents
    )  # no temporary file left


def test_many_records_are_read_in_one_call_as_one_by_one_reads_see_them(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    contents = {f"{sftp_base}/sent/r{i:03}.json": {"n": i, "data": "y" * (i * 1500)} for i in range(60)}
    missing = f"{sftp_base}/sent/never.json"
    with PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_managed_conn() as sftp:
        sftp_server.makedirs(f"{sftp_base}/sent")
        write_json_many(sftp, contents)
        found = read_json_many(sftp, [*contents, missing])  # bodies up to 88 KB: several read rounds
        assert found == {**contents, missing: None}
        assert all(read_json(sftp, path) == found[path] for path in contents)


def test_racing_writers_of_the_same_records_agree_on_one_content_each(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.makedirs(f"{sftp_base}/sent")
    paths = [f"{sftp_base}/sent/r{i:02}.json" for i in range(30)]
    barrier = threading.Barrier(3)
    results: dict[int, dict[str, object]] = {}

    def write(writer: int) -> None:
        with PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_managed_conn() as sftp:
            barrier.wait()
            results[writer] = write_json_many(sftp, {path: {"writer": writer} for path in paths})

    threads = [threading.Thread(target=write, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 3
    for path in paths:
        on_disk = json.loads(sftp_server.local_path(path).read_bytes())
        assert [results[n][path] for n in range(3)] == [on_disk] * 3


def test_a_hundred_records_cost_a_few_round_trips_at_a_distance(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a 50 ms link, 100 records take far less than the 100 x 5 round trips of one-by-one writes."""
    sftp_server.makedirs(f"{sftp_base}/sent")
    with LatencyProxy(sftp_server.port, delay=0.025) as proxy:
        conn = sftp_server.connection_dict()
        conn["port"] = proxy.port
        monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_FAR", json.dumps(conn))
        with PooledSFTPHook(ssh_conn_id="outamation_far").get_managed_conn() as sftp:
            write_json_many(sftp, {f"{sftp_base}/sent/warm.json": {}})  # the probe, once per connection
            requests: list[int] = []
            real = sftp._async_request  # type: ignore[attr-defined]

            def counted(*args: object) -> int:
                requests.append(1)
                return real(*args)

            monkeypatch.setattr(sftp, "_async_request", counted)
            write_json_many(sftp, {f"{sftp_base}/sent/r{i:03}.json": {"n": i} for i in range(100)})
    assert len(requests) >= 400  # open, write, close and rename of each record went pipelined
    assert len(list(sftp_server.local_path(f"{sftp_base}/sent").iterdir())) == 101
