"""Claims on the real servers, file by file: long names, refusals, replaced files, receipts, long run ids."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import paramiko
import pytest
from paramiko.sftp import SFTP_PERMISSION_DENIED

from airflow_outamation import claims
from airflow_outamation.claims import renames as claim_renames
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.sftp import ClaimFilesOperator, manifest_id_for
from airflow_outamation.testing.server_base import SftpTestServer

TARGET = "in_progress/11252026"
LONG_ASCII = "a" * 247 + ".pdf"  # 251 bytes: a legal name, but not with a suffix of 5+ bytes
LONG_UTF8 = "é" * 125 + ".pdf"  # 254 bytes, 129 characters


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def _refuse_renames(monkeypatch: pytest.MonkeyPatch, refused: Any) -> None:
    """Fault injection: the server says ``permission denied`` to the renames ``refused(old, new)`` picks."""
    real = claim_renames.pipelined_renames

    def renames(sftp: paramiko.SFTPClient, moves: Sequence[tuple[str, str]]) -> list[int]:
        allowed = [move for move in moves if not refused(*move)]
        statuses = iter(real(sftp, allowed))
        return [SFTP_PERMISSION_DENIED if refused(*move) else next(statuses) for move in moves]

    monkeypatch.setattr(claim_renames, "pipelined_renames", renames)


def _names(server: SftpTestServer, directory: str) -> list[str]:
    path = server.local_path(directory)
    return sorted(os.listdir(path)) if path.exists() else []


def _assert_no_staging_left(server: SftpTestServer, target: str) -> None:
    claims_dir = server.local_path(f"{target}/.claims")
    assert [p.name for p in claims_dir.iterdir() if p.is_dir() and p.name != "sent"] == []


def test_names_at_the_length_limit_are_claimed_beside_their_namesakes(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    target = f"{sftp_base}/{TARGET}"
    for name in (LONG_ASCII, LONG_UTF8):
        sftp_server.write(f"{target}/{name}", b"already there")
        sftp_server.write(f"{sftp_base}/input/{name}", f"new {name}".encode())
    sftp_server.write(f"{sftp_base}/input/short.pdf", b"short")
    files = [f"{sftp_base}/input/{n}" for n in (LONG_ASCII, LONG_UTF8, "short.pdf")]
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)

    claimed = hook.claim_files(files, target, "dag__run")

    assert sorted(c.source_path for c in claimed) == sorted(files)
    for item in claimed:
        assert len(item.filename.encode()) <= 255
        assert sftp_server.local_path(item.backup_path).read_bytes() == (
            b"short" if item.filename == "short.pdf" else f"new {os.path.basename(item.source_path)}".encode()
        )
    long_ones = {c.source_path: c.filename for c in claimed if c.filename != "short.pdf"}
    assert all(name.endswith(" (1).pdf") for name in long_ones.values())
    assert _names(sftp_server, f"{sftp_base}/input") == []
    _assert_no_staging_left(sftp_server, target)
    assert hook.claim_files([], target, "dag__run") == claimed


def test_a_file_the_server_refuses_to_stage_stays_in_input_and_the_others_are_claimed(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"{sftp_base}/{TARGET}"
    files = [f"{sftp_base}/input/{n}.pdf" for n in ("a", "poison", "z")]
    for path in files:
        sftp_server.write(path, path.encode())
    _refuse_renames(monkeypatch, lambda old, new: old == files[1])
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)

    claimed = hook.claim_files(files, target, "dag__run")

    assert [c.filename for c in claimed] == ["a.pdf", "z.pdf"]
    assert _names(sftp_server, f"{sftp_base}/input") == ["poison.pdf"]
    _assert_no_staging_left(sftp_server, target)
    result = hook.claim(files, target, "dag__run")
    assert result.claimed == claimed
    assert [(s.path, s.reason) for s in result.skipped] == [
        (
            files[1],
            f"the server refused to move it into {target}/.claims/dag__run"
            " (SFTP status 3: Permission denied)",
        )
    ]


def test_a_file_refused_at_its_final_name_goes_back_to_input(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"{sftp_base}/{TARGET}"
    files = [f"{sftp_base}/input/{n}.pdf" for n in ("a", "poison", "z")]
    for path in files:
        sftp_server.write(path, path.encode())
    _refuse_renames(monkeypatch, lambda old, new: "poison" in new and "/.claims/" not in new)
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)

    claimed = hook.claim_files(files, target, "dag__run")

    assert [c.filename for c in claimed] == ["a.pdf", "z.pdf"]
    assert _names(sftp_server, f"{sftp_base}/input") == ["poison.pdf"]
    assert sftp_server.local_path(files[1]).read_bytes() == files[1].encode()
    _assert_no_staging_left(sftp_server, target)
    monkeypatch.undo()
    result = hook.claim(
        [], target, "dag__run"
    )  # a retry reports the same, even once the server would take it
    assert result.claimed == claimed
    assert [s.path for s in result.skipped] == [files[1]]
    assert _names(sftp_server, f"{sftp_base}/input") == ["poison.pdf"]


def test_a_file_replaced_after_it_was_found_ready_is_not_claimed(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    target = f"{sftp_base}/{TARGET}"
    scan, other = f"{sftp_base}/input/scan.pdf", f"{sftp_base}/input/other.pdf"
    sftp_server.write(scan, b"x" * 100_012)
    sftp_server.write(other, b"other")
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    ready = [f.to_dict() for f in hook.list_ready_files(f"{sftp_base}/input", stability_delay=0.1)]
    assert {f["size"] for f in ready} == {100_012, 5}
    found = sftp_server.local_path(scan).stat()
    sftp_server.write(scan, b"re-uploaded!")  # 12 B, same name, between listing and claim
    os.utime(sftp_server.local_path(scan), (found.st_atime, found.st_mtime))  # the size alone tells

    claimed = hook.claim_files(ready, target, "dag__run")

    assert [c.filename for c in claimed] == ["other.pdf"]
    other_stat = sftp_server.local_path(other.replace("input", TARGET)).stat()
    assert claimed[0].to_dict() == {
        "filename": "other.pdf",
        "source_path": other,
        "backup_path": f"{target}/other.pdf",
        "size": 5,
        "mtime": int(other_stat.st_mtime),
        "claim_dir": target,
        "manifest_id": "dag__run",
        "index": 0,
    }
    assert sftp_server.local_path(scan).read_bytes() == b"re-uploaded!"
    _assert_no_staging_left(sftp_server, target)
    assert [(s.path, s.reason) for s in hook.claim([], target, "dag__run").skipped] == [
        (scan, "it changed since it was found ready (size 100012 -> 12); left in the input folder")
    ]


def test_a_new_file_at_a_sent_files_path_is_not_reported_sent(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    target = f"{sftp_base}/{TARGET}"
    scan = f"{sftp_base}/input/scan.pdf"
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    sftp_server.write(scan, b"first scan")
    first = hook.claim_files([scan], target, "dag__run_a")
    hook.run_on_sftp(claims.record_sent, target, "msg_a", [c.to_dict() for c in first])
    assert hook.claim_status(target, "dag__run_a")["sent"] == [f"{target}/scan.pdf"]
    os.rename(sftp_server.local_path(f"{target}/scan.pdf"), sftp_server.local_path(f"{sftp_base}/done.pdf"))
    sftp_server.write(scan, b"the second scan, same name")
    os.utime(sftp_server.local_path(scan), (1_700_000_000, 1_700_000_000))

    second = hook.claim_files([scan], target, "dag__run_b")

    assert [c.backup_path for c in second] == [f"{target}/scan.pdf"]
    assert hook.claim_status(target, "dag__run_b") == {"sent": [], "unsent": [f"{target}/scan.pdf"]}
    hook.run_on_sftp(
        claims.record_sent, target, "msg_b", [f"{target}/scan.pdf"]
    )  # plain paths: identity read from the server
    assert hook.claim_status(target, "dag__run_b") == {"sent": [f"{target}/scan.pdf"], "unsent": []}


def test_a_run_id_of_300_characters_claims(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    target = f"{sftp_base}/{TARGET}"
    sftp_server.write(f"{sftp_base}/input/doc.pdf", b"doc")
    manifest_id = manifest_id_for("outamation_sftp_ingest_project", "manual__" + "x" * 292)
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)

    claimed = hook.claim_files([f"{sftp_base}/input/doc.pdf"], target, manifest_id)

    assert [c.backup_path for c in claimed] == [f"{target}/doc.pdf"]
    assert hook.claim_status(target, manifest_id) == {"sent": [], "unsent": [f"{target}/doc.pdf"]}
    assert all(
        len(name.encode()) < 200 for name in os.listdir(Path(sftp_server.local_path(f"{target}/.claims")))
    )


def test_a_long_name_taken_meanwhile_gets_this_claims_own_name_within_the_limit(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = f"{sftp_base}/{TARGET}"
    source = f"{sftp_base}/input/{LONG_UTF8}"
    sftp_server.write(source, b"ours")
    real = claim_renames.renames_without_replacing
    final = f"{target}/{LONG_UTF8}"

    def another_claim_takes_the_name_first(
        sftp: paramiko.SFTPClient, moves: Sequence[tuple[str, str]], probe_folder: str
    ) -> list[int]:
        if any(new == final for _, new in moves):
            sftp_server.write(final, b"theirs")  # between the placement and the move
        return real(sftp, moves, probe_folder)

    monkeypatch.setattr(claim_renames, "renames_without_replacing", another_claim_takes_the_name_first)
    claimed = PooledSFTPHook(ssh_conn_id=sftp_conn_id).claim_files([source], target, "dag__run")

    assert [c.filename for c in claimed] == [claims.with_suffix(LONG_UTF8, " (claim f09bd653)")]
    assert claimed[0].filename.endswith(" (claim f09bd653).pdf")
    assert len(claimed[0].filename.encode()) <= 255
    assert sftp_server.local_path(claimed[0].backup_path).read_bytes() == b"ours"
    assert sftp_server.local_path(final).read_bytes() == b"theirs"
    _assert_no_staging_left(sftp_server, target)


def test_the_operator_returns_the_claimed_files_and_logs_the_skipped_ones(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, capfd: pytest.CaptureFixture[str]
) -> None:
    paths = [f"{sftp_base}/input/doc{i:02}.pdf" for i in range(23)]
    for path in paths:
        sftp_server.write(path, b"%PDF-1.7")
    found = [{"path": path, "size": 8 if path == paths[0] else 99, "mtime": None} for path in paths]
    operator = ClaimFilesOperator(
        task_id="claim", sftp_conn_id=sftp_conn_id, base_path=sftp_base, files=found
    )
    context = {
        "logical_date": datetime(2026, 11, 25, tzinfo=timezone.utc),
        "run_id": "manual__2026-11-25",
        "dag_run": SimpleNamespace(dag_id="ingest"),
    }

    claimed = operator.execute(context)  # type: ignore[arg-type]

    assert [c["source_path"] for c in claimed] == [paths[0]]
    assert _names(sftp_server, f"{sftp_base}/input") == [f"doc{i:02}.pdf" for i in range(1, 23)]
    captured = capfd.readouterr()
    warning = next(
        line for line in (captured.out + captured.err).splitlines() if "Skipped 22 file(s)" in line
    )
    assert f"Skipped 22 file(s): {paths[1]}: it changed since it was found ready (size 99 -> 8)" in warning
    assert paths[20] in warning
    assert paths[21] not in warning
    assert "; and 2 more" in warning


def test_a_claim_interrupted_before_the_upgrade_resumes(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    target = f"{sftp_base}/{TARGET}"
    sources = [f"{sftp_base}/input/a.pdf", f"{sftp_base}/input/b.pdf"]
    sftp_server.write(f"{target}/.claims/dag__run.json", json.dumps({"sources": sources}).encode())
    sftp_server.write(f"{target}/.claims/dag__run/00000__a.pdf", b"a")  # staged by the old code, then a crash
    sftp_server.write(sources[1], b"b")
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)

    claimed = hook.claim_files([], target, "dag__run")

    assert [(c.source_path, c.backup_path) for c in claimed] == [
        (sources[0], f"{target}/a.pdf"),
        (sources[1], f"{target}/b.pdf"),
    ]
    assert sftp_server.local_path(f"{target}/a.pdf").read_bytes() == b"a"
    _assert_no_staging_left(sftp_server, target)
    hook.run_on_sftp(claims.record_sent, target, "msg_old", [f"{target}/a.pdf"])
    assert hook.claim_status(target, "dag__run") == {
        "sent": [f"{target}/a.pdf"],
        "unsent": [f"{target}/b.pdf"],
    }
