"""Recovery on real servers: claim identity, the rejected folder, completion, automatic resend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow_outamation import claims
from airflow_outamation.exceptions import DocumentApiError, DocumentApiRejectedError, SFTPClaimError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.document_api import ResendUnsentOperator, SubmitBatchesOperator
from airflow_outamation.operators.sftp import ProjectStatusOperator
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, Reply
from airflow_outamation.testing.server_base import SftpTestServer

DATE = "11262026"
MANIFEST = "ingest__run1"

# The killed scripts run the send task as Airflow retries it (same task id: the retry takes over the
# leases of the killed try).
# Sends a claim with completion=move and dies (SIGKILL, as a killed worker) once the third batch
# has its receipt, before its files are moved. Fault injection only: every receipt and move before
# the kill is a real one on the server (the batches of a group are completed one by one here, so
# that exactly two are moved before the kill).
KILLED_SEND_SCRIPT = """
import json, os, signal, sys
from airflow_outamation.operators import document_api

api, sftp, claimed = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
real, done = document_api.complete_batches, []

def dying(hook, batches, *args):
    for message_id, files in batches.items():
        if len(done) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        real(hook, {message_id: files}, *args)
        done.append(message_id)

document_api.complete_batches = dying
document_api.SubmitBatchesOperator(
    task_id="submit_batches", claimed=claimed, uploaded_by="tester", source="SFTP", batch_size=2,
    max_in_flight=1, document_api_conn_id=api, sftp_conn_id=sftp, completion="move",
).execute({})
"""

# Sends a claim and dies (SIGKILL) right after the first rename into the folder named by argv[4]
# (processed or rejected): the move's plan is written and one file of the batch has moved (a
# pipelined burst of renames cut short after its first).
KILLED_MOVE_SCRIPT = """
import json, os, signal, sys
from airflow_outamation.claims import ledger
from airflow_outamation.operators.document_api import SubmitBatchesOperator

api, sftp, claimed, folder = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
real = ledger._move_files

def dying(sftp, moves):
    first = real(sftp, moves[:1])
    if f"/{folder}/" in moves[0][1] and moves[0][1].endswith(".pdf"):
        os.kill(os.getpid(), signal.SIGKILL)
    return first + real(sftp, moves[1:])

ledger._move_files = dying
SubmitBatchesOperator(
    task_id="submit_batches", claimed=claimed, uploaded_by="tester", source="SFTP", batch_size=2,
    max_in_flight=1, document_api_conn_id=api, sftp_conn_id=sftp, completion="move",
).execute({})
"""


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def _claim(
    server: SftpTestServer, base: str, conn_id: str, count: int, first: int = 0, manifest_id: str = MANIFEST
) -> list[dict[str, Any]]:
    """Upload ``count`` documents to ``<base>/input`` and claim them into ``<base>/in_progress/<DATE>``."""
    numbers = range(first, first + count)
    for i in numbers:
        server.write(f"{base}/input/doc{i:03}.pdf", f"%PDF-1.7 document {i}".encode())
    paths = [f"{base}/input/doc{i:03}.pdf" for i in numbers]
    claimed = PooledSFTPHook(conn_id).claim_files(paths, f"{base}/in_progress/{DATE}", manifest_id)
    return [file.to_dict() for file in claimed]


def _submit(claimed: list[dict[str, Any]], api: str, sftp: str, **kwargs: Any) -> SubmitBatchesOperator:
    return SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=claimed,
        uploaded_by="tester",
        source="SFTP",
        document_api_conn_id=api,
        sftp_conn_id=sftp,
        **kwargs,
    )


def _resend(base: str, api: str, sftp: str, **kwargs: Any) -> ResendUnsentOperator:
    return ResendUnsentOperator(
        task_id="resend_unsent", sftp_conn_id=sftp, base_path=base, document_api_conn_id=api, **kwargs
    )


def _documents(server: SftpTestServer, folder: str) -> list[str]:
    local = server.local_path(folder)
    return sorted(name for name in os.listdir(local) if name.endswith(".pdf")) if local.exists() else []


def _accepted_files(receiver: DocumentApiReceiver) -> Counter[str]:
    """How often the API accepted each file (by backup path)."""
    return Counter(
        f["filename"]
        for r in receiver.requests
        if r.valid and 200 <= r.reply.status < 300
        for f in r.json()["files"]
    )


def test_claimed_files_carry_their_claim_folder_and_manifest_id(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 3)

    assert {(c["claim_dir"], c["manifest_id"]) for c in claimed} == {
        (f"{sftp_base}/in_progress/{DATE}", MANIFEST)
    }


def test_a_refused_batch_goes_to_the_rejected_folder_with_its_record_and_the_others_complete(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 10)
    document_api_receiver.script_for_file("doc004.pdf", Reply(400, json.dumps({"error": "bad profile"})))

    with pytest.raises(DocumentApiRejectedError) as failure:
        _submit(claimed, document_api_conn_id, sftp_conn_id, batch_size=2).execute({})

    rejected = f"{sftp_base}/rejected/{DATE}"
    assert rejected in str(failure.value)
    (refused,) = [r.message_id for r in document_api_receiver.requests if r.reply.status == 400]
    assert _documents(sftp_server, rejected) == ["doc004.pdf", "doc005.pdf"]
    record = json.loads(sftp_server.local_path(f"{rejected}/{refused}.json").read_bytes())
    assert (record["message_id"], record["status"], record["attempts"]) == (refused, 400, 1)
    assert "bad profile" in record["answer"]
    assert len(record["answer"]) <= 500
    assert record["time"]
    in_progress = f"{sftp_base}/in_progress/{DATE}"
    assert _documents(sftp_server, in_progress) == [f"doc{i:03}.pdf" for i in range(10) if i not in (4, 5)]
    hook = PooledSFTPHook(sftp_conn_id)
    assert hook.run_on_sftp(claims.sent_message_ids, in_progress) == set(document_api_receiver.accepted_ids)
    assert len(document_api_receiver.accepted_ids) == 4

    again = _submit(claimed, document_api_conn_id, sftp_conn_id, batch_size=2).execute({})
    assert (again["sent"], again["already_sent"], again["failed"]) == (0, 4, 0)
    assert len(document_api_receiver.requests) == 5  # the rejected batch is not sent again


@pytest.mark.parametrize("completion", ["move", "delete"])
def test_completion_takes_only_sent_files_out_of_the_claim_folder(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    completion: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 10)
    document_api_receiver.script_for_file("doc004.pdf", *[Reply(503)] * 4)  # unsent after all retries

    with pytest.raises(DocumentApiError):
        _submit(claimed, document_api_conn_id, sftp_conn_id, batch_size=2, completion=completion).execute({})

    assert _documents(sftp_server, f"{sftp_base}/in_progress/{DATE}") == ["doc004.pdf", "doc005.pdf"]
    processed = _documents(sftp_server, f"{sftp_base}/processed/{DATE}")
    expected = [f"doc{i:03}.pdf" for i in range(10) if i not in (4, 5)]
    assert processed == (expected if completion == "move" else [])
    if completion == "move":
        for name in processed:
            content = sftp_server.local_path(f"{sftp_base}/processed/{DATE}/{name}").read_bytes()
            assert content == f"%PDF-1.7 document {int(name[3:6])}".encode()


def test_a_worker_killed_between_receipt_and_move_is_finished_by_the_next_run(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 10)
    worker = subprocess.run(
        [sys.executable, "-c", KILLED_SEND_SCRIPT, document_api_conn_id, sftp_conn_id, json.dumps(claimed)],
        capture_output=True,
        timeout=120,
    )
    assert worker.returncode == -9, worker.stderr.decode()[-2000:]
    in_progress = f"{sftp_base}/in_progress/{DATE}"
    # receipts are written ahead of the moves (in groups, beside the sends): at least the third
    # batch's receipt exists, its move was cut short
    assert len(PooledSFTPHook(sftp_conn_id).run_on_sftp(claims.sent_message_ids, in_progress)) >= 3
    assert len(_documents(sftp_server, f"{sftp_base}/processed/{DATE}")) == 4  # two batches moved

    _resend(sftp_base, document_api_conn_id, sftp_conn_id, completion="move").execute({})
    summary = _submit(claimed, document_api_conn_id, sftp_conn_id, batch_size=2, completion="move").execute(
        {}
    )

    assert summary["already_sent"] >= 3
    assert _documents(sftp_server, in_progress) == []
    assert _documents(sftp_server, f"{sftp_base}/processed/{DATE}") == [f"doc{i:03}.pdf" for i in range(10)]
    assert set(_accepted_files(document_api_receiver).values()) == {1}
    assert sorted(_accepted_files(document_api_receiver)) == [f"doc{i:03}.pdf" for i in range(10)]


def test_a_batch_the_send_task_gave_up_on_is_resent_under_its_id_once_the_api_is_back(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 6)
    document_api_receiver.script_for_file("doc002.pdf", *[Reply(503)] * 4)  # every retry of the task

    with pytest.raises(DocumentApiError) as failure:
        _submit(claimed, document_api_conn_id, sftp_conn_id, batch_size=2).execute({})
    assert not isinstance(failure.value, DocumentApiRejectedError)
    (gave_up,) = {r.message_id for r in document_api_receiver.requests if r.reply.status == 503}

    summary = _resend(sftp_base, document_api_conn_id, sftp_conn_id).execute({})

    assert (summary["resent"], summary["failed"], summary["rejected"]) == (1, 0, 0)
    assert document_api_receiver.accepted_ids[-1] == gave_up
    assert Counter(document_api_receiver.accepted_ids).most_common(1)[0][1] == 1
    assert _accepted_files(document_api_receiver) == Counter(f"doc{i:03}.pdf" for i in range(6))
    assert _resend(sftp_base, document_api_conn_id, sftp_conn_id).execute({})["resent"] == 0


def test_resend_waits_for_resend_after_and_gives_up_after_max_attempts(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 4)
    document_api_receiver.script_for_file("doc000.pdf", *[Reply(503)] * 8)
    with pytest.raises(DocumentApiError):
        _submit(claimed, document_api_conn_id, sftp_conn_id, batch_size=2).execute({})

    waiting = _resend(sftp_base, document_api_conn_id, sftp_conn_id, resend_after=3600).execute({})
    assert (waiting["resent"], waiting["waiting"]) == (0, 1)
    with pytest.raises(DocumentApiRejectedError) as failure:
        _resend(sftp_base, document_api_conn_id, sftp_conn_id, max_attempts=2).execute({})

    assert f"{sftp_base}/rejected/{DATE}" in str(failure.value)
    assert _documents(sftp_server, f"{sftp_base}/rejected/{DATE}") == ["doc000.pdf", "doc001.pdf"]
    (record,) = [
        json.loads(path.read_bytes())
        for path in sftp_server.local_path(f"{sftp_base}/rejected/{DATE}").glob("*.json")
    ]
    assert (record["status"], record["attempts"]) == (503, 2)
    assert "503" in record["answer"]
    assert _resend(sftp_base, document_api_conn_id, sftp_conn_id).execute({})["resent"] == 0
    assert _accepted_files(document_api_receiver) == Counter(["doc002.pdf", "doc003.pdf"])


def _age(server: SftpTestServer, folder: str, days: float) -> None:
    """Make every record under ``<folder>/.claims`` ``days`` old."""
    old = time.time() - days * 86400
    for directory, _, names in os.walk(server.local_path(f"{folder}/.claims")):
        for name in names:
            os.utime(os.path.join(directory, name), (old, old))


def _records(server: SftpTestServer, folder: str) -> list[str]:
    """Every file under ``<folder>/.claims``, relative to it."""
    root = server.local_path(f"{folder}/.claims")
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root) for n in names)


def test_retention_removes_old_records_of_finished_claims_only(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    folder = f"{sftp_base}/in_progress/{DATE}"
    finished = _claim(sftp_server, sftp_base, sftp_conn_id, 4, manifest_id="ingest__old_done")
    _submit(finished, document_api_conn_id, sftp_conn_id, batch_size=2).execute({})
    unfinished = _claim(sftp_server, sftp_base, sftp_conn_id, 4, first=4, manifest_id="ingest__old_unsent")
    document_api_receiver.script_for_file("doc006.pdf", *[Reply(503)] * 4)
    with pytest.raises(DocumentApiError):
        _submit(unfinished, document_api_conn_id, sftp_conn_id, batch_size=2).execute({})
    _age(sftp_server, folder, 31)
    young = _claim(sftp_server, sftp_base, sftp_conn_id, 2, first=8, manifest_id="ingest__young_done")
    _submit(young, document_api_conn_id, sftp_conn_id, batch_size=2).execute({})
    before = _records(sftp_server, folder)
    hook = PooledSFTPHook(sftp_conn_id)
    finished_ids = {r.message_id for r in document_api_receiver.requests[:2]}
    assert len(finished_ids) == 2

    assert hook.run_on_sftp(claims.purge_finished, folder, 30 * 86400, time.time()) == ["ingest__old_done"]

    after = _records(sftp_server, folder)
    removed = sorted(set(before) - set(after))
    assert removed == sorted(
        ["ingest__old_done.json", "ingest__old_done.placed.json"]
        + [f"{kind}/{i}.json" for kind in ("batches", "sent") for i in finished_ids]
    )
    assert {"ingest__old_unsent.json", "ingest__young_done.json"} <= set(after)
    assert _documents(sftp_server, folder) == [f"doc{i:03}.pdf" for i in range(10)]  # keep: files stay
    assert hook.run_on_sftp(claims.purge_finished, folder, 30 * 86400, time.time()) == []


def test_project_status_counts_ready_claimed_sent_unsent_rejected_and_completed(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 10)
    sftp_server.write(f"{sftp_base}/input/new1.pdf")
    sftp_server.write(f"{sftp_base}/input/new2.pdf")
    document_api_receiver.script_for_file("doc000.pdf", Reply(400, "no"))
    document_api_receiver.script_for_file("doc002.pdf", *[Reply(503)] * 4)
    with pytest.raises(DocumentApiError):
        _submit(claimed, document_api_conn_id, sftp_conn_id, batch_size=2, completion="move").execute({})

    status = ProjectStatusOperator(
        task_id="project_status", sftp_conn_id=sftp_conn_id, base_path=sftp_base, days=2
    ).execute({"logical_date": datetime(2026, 11, 27, tzinfo=timezone.utc)})  # type: ignore[arg-type]

    counts = {"claimed": 10, "sent": 6, "unsent": 2, "rejected": 2, "completed": 6}
    assert status == {"ready": 2, "folders": {DATE: counts}, "total": counts}


def test_files_moved_back_from_the_rejected_folder_are_sent_again(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 1)
    document_api_receiver.script_for_file("doc000.pdf", Reply(400, "bad"))
    with pytest.raises(DocumentApiRejectedError):
        _submit(claimed, document_api_conn_id, sftp_conn_id).execute({})
    rejected = sftp_server.local_path(f"{sftp_base}/rejected/{DATE}/doc000.pdf")
    os.rename(rejected, sftp_server.local_path(f"{sftp_base}/input/doc000.pdf"))  # what the user does

    paths = [f"{sftp_base}/input/doc000.pdf"]
    again = PooledSFTPHook(sftp_conn_id).claim_files(paths, f"{sftp_base}/in_progress/{DATE}", "ingest__run2")
    summary = _submit([c.to_dict() for c in again], document_api_conn_id, sftp_conn_id).execute({})

    assert (summary["sent"], summary["failed"]) == (1, 0)
    assert _accepted_files(document_api_receiver) == Counter(["doc000.pdf"])


def test_a_batch_over_the_attempt_limit_is_given_up_without_another_send(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 2)
    document_api_receiver.script(*[Reply(503, "busy")] * 4)
    with pytest.raises(DocumentApiError):
        _submit(claimed, document_api_conn_id, sftp_conn_id).execute({})
    sends = len(document_api_receiver.requests)

    with pytest.raises(DocumentApiRejectedError):
        _resend(sftp_base, document_api_conn_id, sftp_conn_id, max_attempts=1).execute({})

    assert len(document_api_receiver.requests) == sends
    rejected = sftp_server.local_path(f"{sftp_base}/rejected/{DATE}")
    (record,) = [json.loads(path.read_bytes()) for path in rejected.glob("*.json")]
    assert (record["status"], record["attempts"]) == (503, 1)
    assert record["answer"].startswith("gave up after 1 failed send(s); last: ")
    assert "busy" in record["answer"]
    assert _documents(sftp_server, f"{sftp_base}/rejected/{DATE}") == ["doc000.pdf", "doc001.pdf"]


def test_a_failed_move_does_not_stop_the_sends_and_the_next_run_finishes_it(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 4)
    sftp_server.write(f"{sftp_base}/processed", b"a file where the processed folder should be")

    with pytest.raises(SFTPClaimError, match="housekeeping failed for 4 batch"):  # at the end
        _submit(claimed, document_api_conn_id, sftp_conn_id, batch_size=1, completion="move").execute({})

    assert len(document_api_receiver.accepted_ids) == 4
    in_progress = f"{sftp_base}/in_progress/{DATE}"
    assert len(PooledSFTPHook(sftp_conn_id).run_on_sftp(claims.sent_message_ids, in_progress)) == 4
    assert _documents(sftp_server, in_progress) == [f"doc{i:03}.pdf" for i in range(4)]
    sftp_server.local_path(f"{sftp_base}/processed").unlink()

    _resend(sftp_base, document_api_conn_id, sftp_conn_id, completion="move").execute({})

    assert _documents(sftp_server, in_progress) == []
    assert _documents(sftp_server, f"{sftp_base}/processed/{DATE}") == [f"doc{i:03}.pdf" for i in range(4)]
    assert len(document_api_receiver.accepted_ids) == 4


@pytest.mark.parametrize("folder", ["processed", "rejected"])
def test_a_worker_killed_in_the_middle_of_a_move_is_finished_by_the_next_run(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    folder: str,
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 2)
    if folder == "rejected":
        document_api_receiver.script(Reply(400, "bad"))
    worker = subprocess.run(
        [
            sys.executable,
            "-c",
            KILLED_MOVE_SCRIPT,
            document_api_conn_id,
            sftp_conn_id,
            json.dumps(claimed),
            folder,
        ],
        capture_output=True,
        timeout=120,
    )
    assert worker.returncode == -9, worker.stderr.decode()[-2000:]
    in_progress = f"{sftp_base}/in_progress/{DATE}"
    assert len(_documents(sftp_server, in_progress)) == 1  # cut short: one file moved, one not

    if folder == "rejected":
        with pytest.raises(DocumentApiRejectedError):
            _resend(sftp_base, document_api_conn_id, sftp_conn_id, completion="move").execute({})
    else:
        _resend(sftp_base, document_api_conn_id, sftp_conn_id, completion="move").execute({})

    assert _documents(sftp_server, in_progress) == []
    assert _documents(sftp_server, f"{sftp_base}/{folder}/{DATE}") == ["doc000.pdf", "doc001.pdf"]
    assert len(document_api_receiver.requests) == 1  # sent once, never again
