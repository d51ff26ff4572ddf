"""The ledger finds its records by claim identity, never by path: names are reused all the time."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import paramiko
import pytest

from airflow_outamation import claims
from airflow_outamation.claims import ledger
from airflow_outamation.exceptions import DocumentApiError, DocumentApiRejectedError, SFTPClaimError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.document_api import ResendUnsentOperator, SubmitBatchesOperator
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, Reply
from airflow_outamation.testing.server_base import SftpTestServer

DATE = "11262026"
UNAVAILABLE = [Reply(503)] * 4  # every retry of one send task


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def _claim(
    server: SftpTestServer, base: str, conn_id: str, manifest_id: str, content: bytes | None = None
) -> list[dict[str, Any]]:
    """Claim ``<base>/input/doc.pdf`` (written first when ``content`` is given) into the dated folder."""
    if content is not None:
        server.write(f"{base}/input/doc.pdf", content)
    claimed = PooledSFTPHook(conn_id).claim_files(
        [f"{base}/input/doc.pdf"], f"{base}/in_progress/{DATE}", manifest_id
    )
    return [file.to_dict() for file in claimed]


def submit_claimed(claimed: list[dict[str, Any]], api: str, sftp: str, **kwargs: Any) -> dict[str, Any]:
    """Send claimed files with ``SubmitBatchesOperator`` (records and receipts through ``sftp``)."""
    return SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=claimed,
        uploaded_by="tester",
        source="SFTP",
        document_api_conn_id=api,
        sftp_conn_id=sftp,
        **kwargs,
    ).execute({})


def _resend(base: str, api: str, sftp: str, **kwargs: Any) -> dict[str, Any]:
    return ResendUnsentOperator(
        task_id="resend_unsent", sftp_conn_id=sftp, base_path=base, document_api_conn_id=api, **kwargs
    ).execute({})


def _accepted(receiver: DocumentApiReceiver) -> Counter[str]:
    """How often the API accepted each backup path."""
    return Counter(
        f["backup_path"]
        for r in receiver.requests
        if r.valid and 200 <= r.reply.status < 300
        for f in r.json()["files"]
    )


def test_a_refused_batch_moved_back_and_claimed_again_gets_a_new_id_and_is_resent_after_a_503(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    first = _claim(sftp_server, sftp_base, sftp_conn_id, "ingest__run1", b"%PDF-1.7 doc")
    document_api_receiver.script_for_file("doc.pdf", Reply(400, "bad"))
    with pytest.raises(DocumentApiRejectedError):
        submit_claimed(first, document_api_conn_id, sftp_conn_id)
    (refused,) = {r.message_id for r in document_api_receiver.requests}
    os.rename(  # what the user does, the same day: same path, size and mtime
        sftp_server.local_path(f"{sftp_base}/rejected/{DATE}/doc.pdf"),
        sftp_server.local_path(f"{sftp_base}/input/doc.pdf"),
    )
    second = _claim(sftp_server, sftp_base, sftp_conn_id, "ingest__run2")
    assert second[0]["backup_path"] == first[0]["backup_path"]
    document_api_receiver.script_for_file("doc.pdf", *UNAVAILABLE)
    with pytest.raises(DocumentApiError):
        submit_claimed(second, document_api_conn_id, sftp_conn_id)

    summary = _resend(sftp_base, document_api_conn_id, sftp_conn_id)

    assert summary["resent"] == 1
    (accepted,) = document_api_receiver.accepted_ids
    assert accepted != refused
    assert _accepted(document_api_receiver) == Counter([second[0]["backup_path"]])


def test_retention_keeps_the_records_of_a_newer_claim_that_reused_a_freed_name(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    folder = f"{sftp_base}/in_progress/{DATE}"
    old = _claim(sftp_server, sftp_base, sftp_conn_id, "ingest__old", b"%PDF-1.7 old")
    submit_claimed(old, document_api_conn_id, sftp_conn_id, completion="move")  # frees in_progress/doc.pdf
    past = 1_700_000_000
    for directory, _, names in os.walk(sftp_server.local_path(f"{folder}/.claims")):
        for name in names:
            os.utime(os.path.join(directory, name), (past, past))
    new = _claim(sftp_server, sftp_base, sftp_conn_id, "ingest__new", b"%PDF-1.7 new, unsent")
    assert new[0]["backup_path"] == old[0]["backup_path"]
    document_api_receiver.script_for_file("doc.pdf", *UNAVAILABLE)
    with pytest.raises(DocumentApiError):
        submit_claimed(new, document_api_conn_id, sftp_conn_id, completion="move")

    assert PooledSFTPHook(sftp_conn_id).run_on_sftp(
        claims.purge_finished, folder, 30 * 86400, time.time(), "move"
    ) == ["ingest__old"]
    summary = _resend(sftp_base, document_api_conn_id, sftp_conn_id, completion="move")

    assert summary["resent"] == 1
    processed = sftp_server.local_path(f"{sftp_base}/processed/{DATE}")
    contents = sorted(p.read_bytes() for p in processed.iterdir() if p.suffix == ".pdf")
    assert contents == [b"%PDF-1.7 new, unsent", b"%PDF-1.7 old"]


def test_project_status_counts_each_claim_of_a_reused_name(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    for run, content in (("ingest__run1", b"%PDF-1.7 one"), ("ingest__run2", b"%PDF-1.7 two")):
        claimed = _claim(sftp_server, sftp_base, sftp_conn_id, run, content)
        submit_claimed(claimed, document_api_conn_id, sftp_conn_id, completion="move")

    status = PooledSFTPHook(sftp_conn_id).project_status(sftp_base)

    counts = {"claimed": 2, "sent": 2, "unsent": 0, "rejected": 0, "completed": 2}
    assert status["folders"] == {DATE: counts}


def _write_json(server: SftpTestServer, path: str, content: Any) -> None:
    server.write(path, json.dumps(content, indent=1).encode())


def _id_03(payload: dict[str, Any], files: list[dict[str, Any]]) -> str:
    """The message id 0.3 derived: the payload and each file's ``[size, mtime]``."""
    canonical = [
        json.dumps(v, sort_keys=True, separators=(",", ":"))
        for v in (payload, [[f["size"], float(f["mtime"])] for f in files])
    ]
    return "msg_" + hashlib.sha256("\n".join(canonical).encode()).hexdigest()[:32]


def test_records_written_by_0_3_are_resent_counted_and_purged(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    folder = f"{sftp_base}/in_progress/{DATE}"
    records = f"{folder}/.claims"
    files = []
    for i in range(3):  # a claim made by 0.3: its files placed, its manifest and placement as 0.3 wrote them
        sftp_server.write(f"{folder}/doc{i}.pdf", f"%PDF-1.7 document {i}".encode())
        mtime = int(os.stat(sftp_server.local_path(f"{folder}/doc{i}.pdf")).st_mtime)
        files.append(
            {
                "filename": f"doc{i}.pdf",
                "source_path": f"{sftp_base}/input/doc{i}.pdf",
                "backup_path": f"{folder}/doc{i}.pdf",
                "size": 19,
                "mtime": mtime,
                "claim_dir": folder,
                "manifest_id": "ingest__03",
            }
        )
    _write_json(
        sftp_server,
        f"{records}/ingest__03.json",
        {
            "manifest_id": "ingest__03",
            "files": [{"path": f["source_path"], "size": None, "mtime": None} for f in files],
        },
    )
    _write_json(
        sftp_server,
        f"{records}/ingest__03.placed.json",
        {
            "files": {
                f"{i:05d}.pdf": {"name": f["filename"], "size": 19, "mtime": f["mtime"]}
                for i, f in enumerate(files)
            },
            "skipped": [],
        },
    )
    fields = {"uploaded_by": "tester", "source": "SFTP", "profile_code": "test_profile"}
    ids = []
    for batch in (files[:2], files[2:]):
        payload = {
            "files": [{"filename": f["filename"], "backup_path": f["backup_path"]} for f in batch],
            **fields,
        }
        ids.append(_id_03(payload, batch))
        _write_json(
            sftp_server,
            f"{records}/batches/{ids[-1]}.json",
            {"message_id": ids[-1], "files": batch, **fields},
        )
    sent = [{"path": f["backup_path"], "size": 19, "mtime": f["mtime"]} for f in files[:2]]
    _write_json(sftp_server, f"{records}/sent/{ids[0]}.json", {"message_id": ids[0], "files": sent})
    _write_json(
        sftp_server, f"{records}/attempts/{ids[1]}.1.json", {"status": 503, "answer": "busy", "time": "x"}
    )
    hook = PooledSFTPHook(sftp_conn_id)

    rerun = hook.claim_files([], folder, "ingest__03")  # a claim task of 0.3 cleared after the upgrade
    assert [c.to_dict() for c in rerun] == [{**f, "index": None} for f in files]  # so the same ids
    assert hook.project_status(sftp_base)["total"] == {
        "claimed": 3,
        "sent": 2,
        "unsent": 1,
        "rejected": 0,
        "completed": 0,
    }
    assert _resend(sftp_base, document_api_conn_id, sftp_conn_id, retention_days=None)["resent"] == 1
    assert document_api_receiver.accepted_ids == [ids[1]]
    assert hook.project_status(sftp_base)["total"]["unsent"] == 0
    assert hook.claim_status(folder, "ingest__03") == {
        "sent": [f["backup_path"] for f in files],
        "unsent": [],
    }
    assert hook.run_on_sftp(claims.purge_finished, folder, 0, time.time()) == ["ingest__03"]
    assert sorted(p.name for p in sftp_server.local_path(records).rglob("*") if p.is_file()) == []


def test_a_completion_whose_planned_name_was_taken_takes_another_and_blocks_no_resend(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    processed = f"{sftp_base}/processed/{DATE}"
    sftp_server.write(f"{processed}/doc.pdf", b"an earlier document")
    first = _claim(sftp_server, sftp_base, sftp_conn_id, "ingest__run1", b"%PDF-1.7 first")
    real = ledger._move_files

    def refused_for_a_moment(sftp: paramiko.SFTPClient, moves: list[tuple[str, str]]) -> list[int]:
        if any("/processed/" in new for _, new in moves):  # fault injection: a permission error for a moment
            raise PermissionError(13, "Permission denied")
        return real(sftp, moves)

    with monkeypatch.context() as patched:
        patched.setattr(ledger, "_move_files", refused_for_a_moment)
        with pytest.raises(SFTPClaimError, match="Permission denied"):
            submit_claimed(first, document_api_conn_id, sftp_conn_id, completion="move")
    second = _claim(sftp_server, sftp_base, sftp_conn_id, "ingest__run2", b"%PDF-1.7 second")
    # it takes the first's planned name
    submit_claimed(second, document_api_conn_id, sftp_conn_id, completion="move")
    sftp_server.write(f"{sftp_base}/input/other.pdf", b"%PDF-1.7 other")
    third = PooledSFTPHook(sftp_conn_id).claim_files(
        [f"{sftp_base}/input/other.pdf"], f"{sftp_base}/in_progress/{DATE}", "ingest__run3"
    )
    document_api_receiver.script_for_file("other.pdf", *UNAVAILABLE)
    with pytest.raises(DocumentApiError):
        submit_claimed([c.to_dict() for c in third], document_api_conn_id, sftp_conn_id, completion="move")

    summary = _resend(sftp_base, document_api_conn_id, sftp_conn_id, completion="move")

    assert summary["resent"] == 1
    contents = {
        p.name: p.read_bytes() for p in sftp_server.local_path(processed).iterdir() if p.suffix == ".pdf"
    }
    assert contents == {
        "doc.pdf": b"an earlier document",
        "doc (1).pdf": b"%PDF-1.7 second",
        "doc (2).pdf": b"%PDF-1.7 first",
        "other.pdf": b"%PDF-1.7 other",
    }
    assert sorted(_accepted(document_api_receiver).values()) == [1, 1, 1]


@pytest.mark.parametrize("folder", [f"in_progress/.{DATE}", f"east/in_progress/{DATE}"])
def test_resend_finds_unsent_batches_in_every_claim_folder_of_the_project(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    folder: str,
) -> None:
    """A date folder whose name starts with a dot; a run for a subfolder (``base_path: <project>/east``)."""
    sftp_server.write(f"{sftp_base}/input/doc.pdf", b"%PDF-1.7 doc")
    claimed = PooledSFTPHook(sftp_conn_id).claim_files(
        [f"{sftp_base}/input/doc.pdf"], f"{sftp_base}/{folder}", "ingest__run1"
    )
    document_api_receiver.script_for_file("doc.pdf", *UNAVAILABLE)
    with pytest.raises(DocumentApiError):
        submit_claimed([c.to_dict() for c in claimed], document_api_conn_id, sftp_conn_id)

    summary = _resend(sftp_base, document_api_conn_id, sftp_conn_id)

    assert summary["resent"] == 1
    assert _accepted(document_api_receiver) == Counter([f"{sftp_base}/{folder}/doc.pdf"])


def test_resend_leaves_a_batch_another_run_is_sending_right_now(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, "ingest__run1", b"%PDF-1.7 doc")
    document_api_receiver.script_for_file("doc.pdf", Reply(200, delay=4))  # a slow API: the batch in flight
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(submit_claimed, claimed, document_api_conn_id, sftp_conn_id)
        while not document_api_receiver.requests:  # the first run's request has arrived
            time.sleep(0.05)

        overlapping = _resend(sftp_base, document_api_conn_id, sftp_conn_id)

        assert sending.result()["sent"] == 1
    assert len(document_api_receiver.requests) == 1
    assert (overlapping["resent"], overlapping["in_flight"]) == (0, 1)
    assert _resend(sftp_base, document_api_conn_id, sftp_conn_id)["resent"] == 0


def test_a_live_lease_is_left_to_its_holder_and_an_expired_one_is_taken_over_once(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    folder = f"{sftp_base}/in_progress/{DATE}"
    hook = PooledSFTPHook(sftp_conn_id)
    now = time.time()

    assert hook.run_on_sftp(claims.take_leases, folder, ["msg_a", "msg_b"], "run1", 60, now) == {
        "msg_a": 1,
        "msg_b": 1,
    }
    assert hook.run_on_sftp(claims.take_leases, folder, ["msg_a"], "run2", 60, now + 59) == {}
    assert hook.run_on_sftp(claims.take_leases, folder, ["msg_a"], "run1", 60, now + 59) == {"msg_a": 1}
    assert hook.run_on_sftp(claims.take_leases, folder, ["msg_a"], "run2", 60, now + 61) == {"msg_a": 2}
    assert hook.run_on_sftp(claims.take_leases, folder, ["msg_a"], "run3", 60, now + 61) == {}
    hook.run_on_sftp(claims.release_leases, folder, {"msg_a": 2})
    assert hook.run_on_sftp(claims.take_leases, folder, ["msg_a"], "run3", 60, now + 61) == {"msg_a": 1}
    leases = sftp_server.local_path(f"{folder}/.claims/leases")
    assert sorted(p.name for p in leases.iterdir()) == ["msg_a.1.json", "msg_b.1.json"]


def test_completion_after_leaves_accepted_files_at_their_backup_path_until_a_later_run(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, "ingest__run1", b"%PDF-1.7 doc")
    later = {"completion": "move", "completion_after": 3600}

    submit_claimed(claimed, document_api_conn_id, sftp_conn_id, **later)
    _resend(sftp_base, document_api_conn_id, sftp_conn_id, **later)

    backup = sftp_server.local_path(claimed[0]["backup_path"])
    assert backup.read_bytes() == b"%PDF-1.7 doc"  # the API can still fetch it
    (receipt,) = sftp_server.local_path(f"{sftp_base}/in_progress/{DATE}/.claims/sent").iterdir()
    an_hour_ago = time.time() - 3601
    os.utime(receipt, (an_hour_ago, an_hour_ago))

    _resend(sftp_base, document_api_conn_id, sftp_conn_id, **later)

    assert not backup.exists()
    moved = sftp_server.local_path(f"{sftp_base}/processed/{DATE}/doc.pdf")
    assert moved.read_bytes() == b"%PDF-1.7 doc"
    assert len(document_api_receiver.requests) == 1
