"""SubmitBatchesOperator: every batch of a claim in one task, on a real SFTP server and a real receiver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from airflow_outamation import claims
from airflow_outamation.exceptions import DocumentApiError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.document_api import BATCHES_LISTED, SubmitBatchesOperator
from airflow_outamation.signing import GITHUB, SLACK, STANDARD_WEBHOOKS, STRIPE, UNSIGNED, SigningScheme
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, Reply, deeply_nested_json
from airflow_outamation.testing.latency_proxy import LatencyProxy
from airflow_outamation.testing.server_base import SftpTestServer

# The task as Airflow retries it: the same task id, so the retry takes over the leases of the killed try.
SEND_SCRIPT = """
import json, sys
from airflow_outamation.operators.document_api import BATCHES_LISTED, SubmitBatchesOperator

api, sftp, claimed = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
SubmitBatchesOperator(
    task_id="submit_batches", claimed=claimed, uploaded_by="tester", source="SFTP", batch_size=1,
    max_in_flight=2, document_api_conn_id=api, sftp_conn_id=sftp,
).execute({})
"""


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def place_claimed(server: SftpTestServer, base: str, contents: dict[str, bytes]) -> list[dict[str, str]]:
    """Files (name -> content) as a claim leaves them in ``<base>/in_progress/11262026``."""
    folder = f"{base}/in_progress/11262026"
    files = []
    for name, content in contents.items():
        server.write(f"{folder}/{name}", content)
        files.append(
            {"filename": name, "source_path": f"{base}/input/{name}", "backup_path": f"{folder}/{name}"}
        )
    return files


def _claimed(server: SftpTestServer, base: str, count: int) -> list[dict[str, str]]:
    """``count`` files as a claim leaves them in ``<base>/in_progress/11262026``."""
    return place_claimed(
        server, base, {f"doc{i:03}.pdf": f"%PDF-1.7 document {i}".encode() for i in range(count)}
    )


def _operator(claimed: list[dict[str, str]], api: str, sftp: str, **kwargs: object) -> SubmitBatchesOperator:
    return SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=claimed,
        uploaded_by="tester",
        source="SFTP",
        document_api_conn_id=api,
        sftp_conn_id=sftp,
        **kwargs,  # type: ignore[arg-type]
    )


def _receipted(sftp_conn_id: str, claimed: list[dict[str, str]]) -> set[str]:
    return PooledSFTPHook(sftp_conn_id).run_on_sftp(
        claims.sent_message_ids, os.path.dirname(claimed[0]["backup_path"])
    )


def test_every_batch_is_sent_once_with_a_receipt_and_a_rerun_sends_nothing(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claimed(sftp_server, sftp_base, 23)
    summary = _operator(claimed, document_api_conn_id, sftp_conn_id).execute({})

    assert summary["batches"] == 5
    assert (summary["sent"], summary["already_sent"], summary["failed"]) == (5, 0, 0)
    accepted = document_api_receiver.accepted_ids
    assert sorted(accepted) == sorted(summary["message_ids"])
    assert len(set(accepted)) == 5
    assert all(r.valid for r in document_api_receiver.requests)
    sent_names = sorted(f["filename"] for r in document_api_receiver.requests for f in r.json()["files"])
    assert sent_names == [f"doc{i:03}.pdf" for i in range(23)]
    assert _receipted(sftp_conn_id, claimed) == set(accepted)

    again = _operator(claimed, document_api_conn_id, sftp_conn_id).execute({})
    assert (again["sent"], again["already_sent"]) == (0, 5)
    assert again["message_ids"] == summary["message_ids"]
    assert len(document_api_receiver.requests) == 5


@pytest.mark.parametrize(
    ("scheme", "credentials"),
    [
        (GITHUB, {}),
        (STRIPE, {}),
        (SLACK, {"api_key": "ak_0123456789abcdef"}),
        (STANDARD_WEBHOOKS, {"oauth2_client": ("client", "client-secret-0123456789")}),
        (UNSIGNED, {"oauth2_client": ("client", "client-secret-0123456789")}),
    ],
    ids=["github", "stripe", "slack+api-key", "standard-webhooks+oauth2", "oauth2-alone"],
)
def test_every_preset_and_credential_sends_each_batch_once(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
    scheme: str,
    credentials: dict[str, object],
) -> None:
    claimed = _claimed(sftp_server, sftp_base, 7)
    with DocumentApiReceiver(scheme=SigningScheme(scheme), **credentials) as receiver:  # type: ignore[arg-type]
        monkeypatch.setenv("AIRFLOW_CONN_DOC_API_PRESET", receiver.connection_json(profile_code="p"))
        monkeypatch.delenv("DOC_AI_API_URL", raising=False)
        summary = _operator(claimed, "doc_api_preset", sftp_conn_id).execute({})
        requests = receiver.requests
        assert len(receiver.issued_tokens) == (1 if "oauth2_client" in credentials else 0)
    assert (summary["sent"], summary["failed"]) == (2, 0)
    assert all(r.valid for r in requests), [(r.signature_error, r.auth_error) for r in requests]
    assert sorted(r.message_id for r in requests) == sorted(summary["message_ids"])
    assert _receipted(sftp_conn_id, claimed) == set(summary["message_ids"])


def test_a_refused_batch_fails_the_task_by_name_and_is_not_sent_again(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claimed(sftp_server, sftp_base, 10)
    document_api_receiver.script_for_file("doc004.pdf", Reply(400, json.dumps({"error": "bad profile"})))

    with pytest.raises(DocumentApiError) as failure:
        _operator(claimed, document_api_conn_id, sftp_conn_id, batch_size=2).execute({})

    refused = [r.message_id for r in document_api_receiver.requests if r.reply.status == 400]
    assert len(refused) == 1
    message = str(failure.value)
    assert refused[0] in message
    assert "HTTP 400" in message
    assert "doc004.pdf … doc005.pdf (2)" in message
    assert f"{sftp_base}/in_progress/11262026" in message
    accepted = set(document_api_receiver.accepted_ids)
    assert len(accepted) == 4
    assert _receipted(sftp_conn_id, claimed) == accepted  # the others are sent and receipted

    assert f"{sftp_base}/rejected/11262026" in message  # its files were moved there

    document_api_receiver.reset()
    summary = _operator(claimed, document_api_conn_id, sftp_conn_id, batch_size=2).execute({})
    assert (summary["sent"], summary["already_sent"], summary["failed"]) == (0, 4, 0)
    assert document_api_receiver.requests == []  # the refused batch is in the rejected folder


def test_retry_after_on_one_batch_holds_back_every_sender(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claimed(sftp_server, sftp_base, 12)
    document_api_receiver.script_for_file("doc002.pdf", Reply(429, retry_after="1"))
    document_api_receiver.script(*[Reply(delay=0.05)] * 12)  # keep several batches in flight

    operator = _operator(
        claimed,
        document_api_conn_id,
        sftp_conn_id,
        batch_size=1,
        max_in_flight=4,
        hook_kwargs={"backoff_max": 5},
    )
    summary = operator.execute({})

    assert (summary["sent"], summary["failed"]) == (12, 0)
    requests = document_api_receiver.requests
    (throttled,) = [r for r in requests if r.reply.status == 429]
    after = [r.received_at - throttled.received_at for r in requests if r.received_at > throttled.received_at]
    # Requests already on their way when the 429 came back may arrive just after it; then nothing
    # until Retry-After (1 s) has passed: the pause held back every sender, not only the throttled one.
    assert len([t for t in after if t < 0.1]) <= 3
    assert [t for t in after if 0.1 <= t < 0.95] == []
    assert len([t for t in after if t >= 0.95]) >= 4
    assert Counter(document_api_receiver.accepted_ids).most_common(1)[0][1] == 1


@pytest.mark.parametrize("one_way_delay", [0, 0.025], ids=["loopback", "50ms-rtt"])
def test_a_send_task_killed_mid_way_resends_only_the_batches_without_a_receipt(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
    one_way_delay: float,
) -> None:
    """Also at a distance (LatencyProxy), where receipts are written in groups beside the sends."""
    claimed = _claimed(sftp_server, sftp_base, 30)
    # Ten quick answers, then answers that never come before the kill: however loaded the machine,
    # the worker cannot finish all 30 before the poll below sees 8 receipts.
    document_api_receiver.script(*[Reply(delay=0.1)] * 10, *[Reply(delay=60)] * 20)
    proxy = LatencyProxy(sftp_server.port, one_way_delay).start()
    conn = sftp_server.connection_dict()
    conn["port"] = proxy.port
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_FAR", json.dumps(conn))
    far_conn_id = "outamation_far" if one_way_delay else sftp_conn_id
    worker = subprocess.Popen(
        [sys.executable, "-c", SEND_SCRIPT, document_api_conn_id, far_conn_id, json.dumps(claimed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(_receipted(sftp_conn_id, claimed)) < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    time.sleep(20 * one_way_delay)  # requests the worker sent before it died still reach the server
    receipted_before = _receipted(sftp_conn_id, claimed)
    assert 8 <= len(receipted_before) < 30, "the worker was killed mid-way"
    first_attempt = [r.message_id for r in document_api_receiver.requests]

    document_api_receiver.reset()
    try:
        summary = _operator(claimed, document_api_conn_id, far_conn_id, batch_size=1).execute({})
    finally:
        PooledSFTPHook.close_all()
        proxy.stop()

    resent = document_api_receiver.accepted_ids
    assert summary["already_sent"] == len(receipted_before)
    assert not set(resent) & receipted_before  # nothing with a receipt went out again
    assert len(resent) == len(set(resent)) == 30 - len(receipted_before)
    assert set(resent) | receipted_before == set(summary["message_ids"])
    # A batch sent twice was in flight when the worker died: it went again under the same id.
    assert set(resent) & set(first_attempt) <= set(first_attempt) - receipted_before
    assert _receipted(sftp_conn_id, claimed) == set(summary["message_ids"])


def test_a_malformed_acceptance_fails_its_batch_and_keeps_the_others_receipts(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    """A 200 nested 100,000 deep killed the task (RecursionError) without the accepted batches' receipts."""
    claimed = _claimed(sftp_server, sftp_base, 10)
    document_api_receiver.script_for_file("doc004.pdf", Reply(200, deeply_nested_json()))

    with pytest.raises(DocumentApiError) as failure:
        _operator(claimed, document_api_conn_id, sftp_conn_id, batch_size=2).execute({})

    assert "(HTTP 200; doc004.pdf … doc005.pdf (2)" in str(failure.value)
    accepted = {r.message_id for r in document_api_receiver.requests if "doc004.pdf" not in r.body.decode()}
    assert len(accepted) == 4
    assert _receipted(sftp_conn_id, claimed) == accepted


def test_the_xcom_lists_the_first_message_ids_and_where_the_ledger_has_them_all(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    count = BATCHES_LISTED + 20
    claimed = _claimed(sftp_server, sftp_base, count)

    summary = _operator(claimed, document_api_conn_id, sftp_conn_id, batch_size=1).execute({})

    assert (summary["batches"], summary["sent"]) == (count, count)
    assert len(summary["message_ids"]) == BATCHES_LISTED  # not one per batch: the XCom is bounded
    assert set(summary["message_ids"]) < set(document_api_receiver.accepted_ids)
    (claim_dir,) = summary["claim_dirs"]
    assert _receipted(sftp_conn_id, claimed) == set(document_api_receiver.accepted_ids)
    assert claim_dir == os.path.dirname(claimed[0]["backup_path"])
