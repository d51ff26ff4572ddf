"""
Renames that never replace a file, on all four server kinds: the probe, the folder lock, racing claims.

rclone's ``serve sftp`` replaces an existing target on rename; OpenSSH, ProFTPD and the asyncssh
server refuse. Every test here checks by content that no document was overwritten.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from airflow_outamation.claims import folder_lock, rename_replaces, renames_are_exclusive
from airflow_outamation.claims.records import read_json, write_json_once
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.testing.server_base import SftpTestServer

TARGET = "in_progress/11252026"


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def _together(workers: list[Callable[[], object]]) -> list[object]:
    """Run ``workers`` in threads released at one instant; return their results (or raise an error)."""
    barrier = threading.Barrier(len(workers))
    results: list[object] = [None] * len(workers)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = workers[index]()
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    if errors:
        raise errors[0]
    return results


def _claim(conn_id: str, files: list[str], target: str, manifest_id: str) -> Callable[[], object]:
    return lambda: PooledSFTPHook(ssh_conn_id=conn_id).claim_files(files, target, manifest_id)


def test_the_probe_tells_a_replacing_server_from_a_refusing_one(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    with hook.get_managed_conn() as sftp:
        assert rename_replaces(sftp, sftp_base) is (sftp_server.kind == "rclone")
        assert rename_replaces(sftp, "/no/such/folder") is (sftp_server.kind == "rclone")  # cached
        # only OpenSSH refuses atomically (link(2)); ProFTPD and asyncssh check, then rename
        assert renames_are_exclusive(sftp, sftp_base) is (sftp_server.kind == "openssh")
    assert [p.name for p in sftp_server.local_path(sftp_base).iterdir()] == []  # the probe cleaned up


def test_two_claims_racing_into_one_date_folder_keep_every_document(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    """Two projects' runs claim 20 same-named documents each into one date folder, 8 times over."""
    for trial in range(8):
        base = f"{sftp_base}/trial{trial}"
        target = f"{base}/{TARGET}"
        inputs = {side: [f"{base}/{side}/input/doc{i:02}.pdf" for i in range(20)] for side in ("a", "b")}
        for side, paths in inputs.items():
            for i, path in enumerate(paths):
                sftp_server.write(path, f"{side} {i}".encode())
        claimed = _together(
            [_claim(sftp_conn_id, inputs[side], target, f"dag_{side}__run{trial}") for side in inputs]
        )
        backup_paths = [c.backup_path for side in claimed for c in side]  # type: ignore[attr-defined]
        assert len(backup_paths) == len(set(backup_paths)) == 40
        contents = sorted(sftp_server.local_path(path).read_bytes() for path in backup_paths)
        assert contents == sorted(f"{side} {i}".encode() for side in "ab" for i in range(20))
        names = [p.name for p in sftp_server.local_path(target).iterdir() if p.name.endswith(".pdf")]
        assert len(names) == 40


def test_the_first_of_racing_record_writers_wins_everywhere(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    path = f"{sftp_base}/record.json"
    sftp_server.makedirs(sftp_base)

    def write(value: int) -> Callable[[], object]:
        def run() -> object:
            with PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_managed_conn() as sftp:
                return write_json_once(sftp, path, {"writer": value})

        return run

    for _ in range(5):
        results = _together([write(1), write(2), write(3)])
        with PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_managed_conn() as sftp:
            stored = read_json(sftp, path)
            sftp.remove(path)
        assert results == [stored] * 3  # each writer got the one record that stands
    assert [p.name for p in sftp_server.local_path(sftp_base).iterdir()] == []


def test_folder_lock_holders_never_overlap_and_an_expired_lock_is_taken_over(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.makedirs(sftp_base)
    inside: list[int] = []
    overlaps: list[int] = []

    def hold(name: str) -> Callable[[], object]:
        def run() -> object:
            with PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_managed_conn() as sftp:
                for _ in range(3):
                    with folder_lock(sftp, sftp_base, name):
                        inside.append(1)
                        if len(inside) > 1:
                            overlaps.append(1)
                        time.sleep(0.05)
                        inside.pop()
            return name

        return run

    _together([hold("one"), hold("two"), hold("three")])
    if sftp_server.kind == "openssh":  # renames are exclusive: the lock is a no-op
        with (
            PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_managed_conn() as sftp,
            folder_lock(sftp, sftp_base, "one"),
        ):
            assert [p.name for p in sftp_server.local_path(sftp_base).iterdir()] == []
        return
    assert overlaps == []
    with PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_managed_conn() as sftp:
        abandoned = folder_lock(sftp, sftp_base, "died", expiry=0.5)
        abandoned.__enter__()  # a holder that never releases (its worker died)
        started = time.monotonic()
        with folder_lock(sftp, sftp_base, "next", wait=30):
            took = time.monotonic() - started
        assert 0.4 < took < 30
        abandoned = folder_lock(sftp, sftp_base, "claim_1", resume=True)
        abandoned.__enter__()  # a claim whose worker died holding the lock
        started = time.monotonic()
        with folder_lock(sftp, sftp_base, "claim_1", resume=True):  # its retry
            assert time.monotonic() - started < 5
    assert [p.name for p in sftp_server.local_path(sftp_base).iterdir()] == []
