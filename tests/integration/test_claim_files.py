"""Claiming files against the real servers: never lost, claimed once, crash-safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_outamation import claims
from airflow_outamation.claims import ClaimedFile
from airflow_outamation.exceptions import SFTPClaimError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.testing.pytest_plugin import set_airflow_connection
from airflow_outamation.testing.server_base import SftpTestServer

# Runs one claim in a separate process; with CRASH_PHASE set, the process dies (os._exit, as a
# killed worker would) after CRASH_AFTER renames of that phase. Fault injection only: every rename
# before the crash is a real one on the server.
CLAIM_SCRIPT = """
import json, os, sys
from airflow_outamation.claims import renames
from airflow_outamation.hooks.sftp import PooledSFTPHook

conn_id, target, manifest_id, files = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
phase, after = os.environ.get("CRASH_PHASE"), int(os.environ.get("CRASH_AFTER", "0"))
real = renames.pipelined_renames

def crashing(sftp, moves):
    staging = moves and "/.claims/" in moves[0][1]
    if phase == ("stage" if staging else "move"):
        real(sftp, moves[:after])
        os._exit(9)
    return real(sftp, moves)

renames.pipelined_renames = crashing
claimed = PooledSFTPHook(ssh_conn_id=conn_id).claim_files(files, target, manifest_id)
print(json.dumps([c.to_dict() for c in claimed]))
"""


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def _seed(server: SftpTestServer, base: str, count: int) -> list[str]:
    paths = [f"{base}/input/doc{i:03}.pdf" for i in range(count)]
    for i, path in enumerate(paths):
        server.write(path, f"%PDF-1.7 document {i}".encode())
    return paths


def _claim_in_process(
    conn_id: str, target: str, manifest_id: str, files: list[str], **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLAIM_SCRIPT, conn_id, target, manifest_id, json.dumps(files)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


def _assert_each_file_in_exactly_one_place(server: SftpTestServer, base: str, count: int) -> None:
    """Every seeded document exists once under base (input or in_progress), bytes intact."""
    contents = []
    for directory, _, names in os.walk(server.local_path(base)):
        contents += [Path(directory, n).read_bytes() for n in names if n.endswith(".pdf")]
    assert sorted(contents) == sorted(f"%PDF-1.7 document {i}".encode() for i in range(count))


def test_claim_moves_files_and_a_repeat_returns_the_same_set(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    files = _seed(sftp_server, sftp_base, 12)
    target = f"{sftp_base}/in_progress/11252026"
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    claimed = hook.claim_files(files, target, "dag__run1")
    assert [(c.filename, c.source_path, c.backup_path, c.size) for c in claimed] == [
        (f"doc{i:03}.pdf", path, f"{target}/doc{i:03}.pdf", len(f"%PDF-1.7 document {i}"))
        for i, path in enumerate(files)
    ]
    assert [c.mtime for c in claimed] == [
        int(os.stat(sftp_server.local_path(c.backup_path)).st_mtime) for c in claimed
    ]
    assert hook.claim_files(files, target, "dag__run1") == claimed
    assert hook.claim_files([], target, "dag__run1") == claimed
    assert os.listdir(sftp_server.local_path(f"{sftp_base}/input")) == []
    assert sorted(os.listdir(sftp_server.local_path(f"{target}/.claims"))) == [
        "dag__run1.json",
        "dag__run1.placed.json",
    ]
    _assert_each_file_in_exactly_one_place(sftp_server, sftp_base, 12)


def test_same_name_in_target_keeps_both(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    target = f"{sftp_base}/in_progress/11252026"
    sftp_server.write(f"{target}/report.pdf", b"yesterday's report")
    sftp_server.write(f"{target}/report (1).pdf", b"an older copy")
    sftp_server.write(f"{sftp_base}/input/report.pdf", b"today's report")
    claimed = PooledSFTPHook(ssh_conn_id=sftp_conn_id).claim_files(
        [f"{sftp_base}/input/report.pdf"], target, "dag__run"
    )
    assert [c.filename for c in claimed] == ["report (2).pdf"]
    assert sftp_server.local_path(f"{target}/report.pdf").read_bytes() == b"yesterday's report"
    assert sftp_server.local_path(f"{target}/report (1).pdf").read_bytes() == b"an older copy"
    assert sftp_server.local_path(f"{target}/report (2).pdf").read_bytes() == b"today's report"


def test_vanished_source_is_skipped(sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str) -> None:
    files = _seed(sftp_server, sftp_base, 3)
    os.remove(sftp_server.local_path(files[1]))
    claimed = PooledSFTPHook(ssh_conn_id=sftp_conn_id).claim_files(files, f"{sftp_base}/ip", "dag__run")
    assert [c.source_path for c in claimed] == [files[0], files[2]]


def test_two_threads_racing_claim_each_file_once(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    files = _seed(sftp_server, sftp_base, 100)
    target = f"{sftp_base}/in_progress/11252026"
    results: dict[str, list[ClaimedFile]] = {}
    start = threading.Barrier(2)

    def claim(manifest_id: str) -> None:
        hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
        start.wait()
        results[manifest_id] = hook.claim_files(files, target, manifest_id)

    threads = [threading.Thread(target=claim, args=(f"dag__run{i}",)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    sources = [c.source_path for claimed in results.values() for c in claimed]
    assert sorted(sources) == files
    backups = [c.backup_path for claimed in results.values() for c in claimed]
    assert len(set(backups)) == 100
    _assert_each_file_in_exactly_one_place(sftp_server, sftp_base, 100)
    assert os.listdir(sftp_server.local_path(f"{sftp_base}/input")) == []


@pytest.mark.slow
def test_two_processes_racing_claim_each_file_once(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    files = _seed(sftp_server, sftp_base, 100)
    target = f"{sftp_base}/in_progress/11252026"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CLAIM_SCRIPT,
                sftp_conn_id,
                target,
                f"other_dag__run{i}",
                json.dumps(files),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in (1, 2)
    ]
    outputs = [json.loads(proc.communicate(timeout=120)[0].splitlines()[-1]) for proc in procs]
    sources = [c["source_path"] for claimed in outputs for c in claimed]
    assert sorted(sources) == files
    assert len({c["backup_path"] for claimed in outputs for c in claimed}) == 100
    _assert_each_file_in_exactly_one_place(sftp_server, sftp_base, 100)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["stage", "move"])
def test_crash_mid_claim_then_retry_returns_every_file_once(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, phase: str
) -> None:
    files = _seed(sftp_server, sftp_base, 10)
    target = f"{sftp_base}/in_progress/11252026"
    crashed = _claim_in_process(sftp_conn_id, target, "dag__run", files, CRASH_PHASE=phase, CRASH_AFTER="4")
    assert crashed.returncode == 9
    _assert_each_file_in_exactly_one_place(sftp_server, sftp_base, 10)
    moved_before_retry = len([n for n in os.listdir(sftp_server.local_path(target)) if n.endswith(".pdf")])
    assert moved_before_retry == (4 if phase == "move" else 0)

    retried = _claim_in_process(sftp_conn_id, target, "dag__run", files)
    assert retried.returncode == 0, retried.stderr
    claimed = json.loads(retried.stdout.splitlines()[-1])
    assert sorted(c["source_path"] for c in claimed) == files
    assert sorted(os.listdir(sftp_server.local_path(target))) == [
        ".claims",
        *(f"doc{i:03}.pdf" for i in range(10)),
    ]
    assert os.listdir(sftp_server.local_path(f"{sftp_base}/input")) == []
    assert PooledSFTPHook(ssh_conn_id=sftp_conn_id).claim_files([], target, "dag__run") == [
        ClaimedFile(**c) for c in claimed
    ]


def test_permission_denied_on_in_progress_leaves_every_file_in_input(
    openssh_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn_id = set_airflow_connection(monkeypatch, "outamation_claim_denied", openssh_server)
    base = openssh_server.remote_path(f"denied-{tmp_path.name}")
    files = _seed(openssh_server, base, 5)
    openssh_server.makedirs(f"{base}/in_progress")
    os.chmod(openssh_server.local_path(f"{base}/in_progress"), 0o555)
    try:
        with pytest.raises(SFTPClaimError, match=f"{base}/in_progress/11252026"):
            PooledSFTPHook(ssh_conn_id=conn_id).claim_files(files, f"{base}/in_progress/11252026", "dag__run")
    finally:
        os.chmod(openssh_server.local_path(f"{base}/in_progress"), 0o755)
    assert sorted(os.listdir(openssh_server.local_path(f"{base}/input"))) == [
        f"doc{i:03}.pdf" for i in range(5)
    ]


def test_receipts_tell_sent_files_from_unsent_ones(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    files = _seed(sftp_server, sftp_base, 7)
    target = f"{sftp_base}/in_progress/11252026"
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    claimed = [c.backup_path for c in hook.claim_files(files, target, "dag__run")]
    assert hook.claim_status(target, "dag__run") == {"sent": [], "unsent": claimed}

    receipt = hook.run_on_sftp(claims.record_sent, target, "msg_first", claimed[:5])
    assert (
        hook.run_on_sftp(claims.record_sent, target, "msg_first", claimed[:5]) == receipt
    )  # a resend records nothing new

    assert receipt == f"{target}/.claims/sent/msg_first.json"
    assert json.loads(sftp_server.local_path(receipt).read_bytes()) == {
        "version": 2,
        "message_id": "msg_first",
        "files": [
            {"path": path, "size": 19, "mtime": int(os.stat(sftp_server.local_path(path)).st_mtime)}
            for path in claimed[:5]
        ],
    }
    assert hook.claim_status(target, "dag__run") == {"sent": claimed[:5], "unsent": claimed[5:]}
    with pytest.raises(SFTPClaimError, match=f"no claim dag__other in {target}"):
        hook.claim_status(target, "dag__other")
