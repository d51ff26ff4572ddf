"""Opt-in checksums: each file's SHA-256 in the payload and in its receipt, on every server kind."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_outamation import claims
from airflow_outamation.exceptions import DocumentApiError, DocumentApiRejectedError
from airflow_outamation.hooks.document_api import DocumentApiHook
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.hooks.sftp_async import CHECKSUM_CHUNK
from airflow_outamation.operators.document_api import ResendUnsentOperator, SubmitBatchesOperator
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, Reply
from airflow_outamation.testing.server_base import SftpTestServer
from tests.integration.test_submit_batches import place_claimed


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def _claimed(server: SftpTestServer, base: str) -> list[dict[str, str]]:
    """Three files as a claim leaves them, one longer than a checksum read (several reads per file)."""
    contents = [b"%PDF-1.7 small", os.urandom(2 * CHECKSUM_CHUNK + 12345), b""]
    return place_claimed(server, base, {f"doc{i}.pdf": content for i, content in enumerate(contents)})


def _operator(claimed: list[dict[str, str]], api: str, sftp: str, **kwargs: Any) -> SubmitBatchesOperator:
    return SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=claimed,
        uploaded_by="tester",
        source="SFTP",
        batch_size=2,
        document_api_conn_id=api,
        sftp_conn_id=sftp,
        **kwargs,
    )


def _sha256(server: SftpTestServer, path: str) -> str:
    return hashlib.sha256(server.local_path(path).read_bytes()).hexdigest()


def _sent_checksums(receiver: DocumentApiReceiver) -> dict[str, str | None]:
    return {f["filename"]: f.get("sha256") for r in receiver.requests for f in r.json()["files"]}


def test_payload_and_receipt_carry_each_files_sha256(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claimed(sftp_server, sftp_base)
    document_api_receiver.local_file = sftp_server.local_path  # the receiver checks each checksum

    summary = _operator(claimed, document_api_conn_id, sftp_conn_id, checksum="sha256").execute({})

    assert (summary["sent"], summary["failed"]) == (2, 0)
    expected = {f["filename"]: _sha256(sftp_server, f["backup_path"]) for f in claimed}
    assert _sent_checksums(document_api_receiver) == expected
    folder = os.path.dirname(claimed[0]["backup_path"])
    receipts = [
        json.loads(
            sftp_server.local_path(claims.record_path(folder, claims.SENT_DIR, message_id)).read_bytes()
        )
        for message_id in summary["message_ids"]
    ]
    recorded = {os.path.basename(f["path"]): f["sha256"] for r in receipts for f in r["files"]}
    assert recorded == expected


def test_checksums_leave_the_message_ids_alone(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claimed(sftp_server, sftp_base)
    plain = _operator(claimed, document_api_conn_id, sftp_conn_id).execute({})
    assert set(_sent_checksums(document_api_receiver).values()) == {None}

    api = DocumentApiHook(document_api_conn_id)
    ids = [
        api.prepare_batch(batch, "tester", "SFTP").message_id
        for batch in ([{**claimed[0], "sha256": "ab" * 32}, claimed[1]], [claimed[2]])
    ]
    api.close()
    assert ids == plain["message_ids"]


def test_a_resend_sends_the_recorded_checksums(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claimed(sftp_server, sftp_base)
    document_api_receiver.local_file = sftp_server.local_path
    document_api_receiver.script_for_file("doc2.pdf", *[Reply(503)] * 4)  # every retry of its batch
    with pytest.raises(DocumentApiError):
        _operator(claimed, document_api_conn_id, sftp_conn_id, checksum="sha256").execute({})
    document_api_receiver.reset()

    ResendUnsentOperator(
        task_id="resend_unsent",
        sftp_conn_id=sftp_conn_id,
        base_path=sftp_base,
        document_api_conn_id=document_api_conn_id,
    ).execute({})

    assert _sent_checksums(document_api_receiver) == {
        "doc2.pdf": _sha256(sftp_server, claimed[2]["backup_path"])
    }
    assert document_api_receiver.requests[0].reply.status == 200


def test_the_receiver_refuses_a_wrong_checksum(
    sftp_server: SftpTestServer,
    sftp_base: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claimed(sftp_server, sftp_base)
    document_api_receiver.local_file = sftp_server.local_path
    api = DocumentApiHook(document_api_conn_id)
    try:
        with pytest.raises(DocumentApiRejectedError, match="422"):
            api.submit_batch([{**claimed[0], "sha256": "00" * 32}], "tester", "SFTP")
    finally:
        api.close()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"checksum": "md5", "sftp_conn_id": "x"}, "checksum must be"),
        ({"checksum": "sha256", "sftp_conn_id": None}, "needs sftp_conn_id"),
    ],
)
def test_checksum_argument_is_checked(kwargs: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        SubmitBatchesOperator(task_id="t", claimed=[], uploaded_by="u", source="s", **kwargs)
