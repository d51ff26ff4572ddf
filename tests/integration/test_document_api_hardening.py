"""
DocumentApiHook against the real local receiver, issue 19: URL and secret leaks, answers that are
not acceptances, TLS certificates, message ids that cover the files' identities.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_outamation.exceptions import DocumentApiError
from airflow_outamation.hooks.document_api import BatchSubmission, DocumentApiHook, DocumentApiTransientError
from airflow_outamation.testing.document_api_receiver import (
    DocumentApiReceiver,
    Reply,
    deeply_nested_json,
    write_self_signed_certificate,
)

FILES = [
    {"filename": "a.pdf", "backup_path": "/in_progress/11252026/a.pdf", "size": 3, "mtime": 1764000000.5},
    {"filename": "b.pdf", "backup_path": "/in_progress/11252026/b.pdf", "size": 4, "mtime": 1764000001.0},
]
TOKEN = "Qk7-tok3n-9f8e7d6c5b4a"
USER_PASSWORD = "hunter2-pass"
FAST = {"profile_code": "p", "max_retries": 1, "backoff_initial": 0.01, "backoff_max": 0.05}


def all_log_output(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Standard logging records plus what Airflow's structlog loggers printed."""
    captured = capfd.readouterr()
    return caplog.text + captured.out + captured.err


def error_texts(exc: BaseException) -> str:
    """Everything an error can show: its text, its repr, and the whole traceback with its chain."""
    return "\n".join([str(exc), repr(exc), "".join(traceback.format_exception(exc))])


def fragments(secret: str, size: int = 8) -> set[str]:
    """Every run of ``size`` characters of ``secret``."""
    return {secret[start : start + size] for start in range(len(secret) - size + 1)}


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn: dict[str, Any]) -> str:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    monkeypatch.delenv("DOC_AI_API_URL", raising=False)
    return conn_id


def submit(conn_id: str, files: list[dict[str, Any]] = FILES, **hook_kwargs: Any) -> BatchSubmission:
    hook = DocumentApiHook(conn_id, **hook_kwargs)
    try:
        return hook.submit_batch(files, "Admin", "SFTP")
    finally:
        hook.close()


@pytest.fixture
def receiver() -> Iterator[DocumentApiReceiver]:
    with DocumentApiReceiver() as server:
        yield server


# 1. The URL's query and user info never show -------------------------------------------------


def url_with_credentials(receiver: DocumentApiReceiver) -> str:
    return f"http://probe:{USER_PASSWORD}@127.0.0.1:{receiver.port}/process?api_key={TOKEN}&mode=strict"


@pytest.mark.parametrize("failure", ["refused", "timeout", "5xx"])
def test_url_query_and_user_info_never_in_errors_or_logs(
    failure: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    receiver = DocumentApiReceiver().start()
    url = url_with_credentials(receiver)
    display = f"http://127.0.0.1:{receiver.port}/process"
    conn = {**receiver.connection_dict(**FAST), "host": url}
    if failure == "refused":
        receiver.stop()
    elif failure == "timeout":
        receiver.script(Reply(delay=3), Reply(delay=3))
    else:
        echo = f"upstream failed for POST /process?api_key={TOKEN}&mode=strict as probe:{USER_PASSWORD}"
        receiver.script(Reply(503, echo), Reply(502, echo))
    conn_id = set_connection(monkeypatch, "doc_api_query", conn)
    caplog.set_level(logging.INFO)
    try:
        with pytest.raises(DocumentApiError, match="after 2 attempts") as excinfo:
            submit(conn_id, timeout=0.3)
    finally:
        receiver.stop()
    logs = all_log_output(caplog, capfd)
    assert display in str(excinfo.value)
    assert "Attempt 1 of 2 failed" in logs
    for text in (error_texts(excinfo.value), logs):
        for secret in (TOKEN, USER_PASSWORD, "api_key=", "mode=strict"):
            assert secret not in text


def test_url_query_values_are_known_to_the_secrets_masker(
    receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.log import redact

    conn = {**receiver.connection_dict(**FAST), "host": url_with_credentials(receiver)}
    DocumentApiHook(set_connection(monkeypatch, "doc_api_mask_url", conn)).settings  # noqa: B018
    assert TOKEN not in str(redact(f"GET /process?api_key={TOKEN}"))
    assert USER_PASSWORD not in str(redact(f"user probe:{USER_PASSWORD}"))


# 2. No fragment of the secret shows ---------------------------------------------------------------


def test_echoed_fragments_of_the_secret_are_masked(
    receiver: DocumentApiReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    secret = receiver.secret
    payload = secret.removeprefix("whsec_")
    receiver.script(
        Reply(503, f"key {payload} is rotating"),
        Reply(400, json.dumps({"error": f"signature mismatch for key {payload}", "hint": payload[5:17]})),
    )
    conn_id = set_connection(
        monkeypatch, "doc_api_echo", receiver.connection_dict(**{**FAST, "max_retries": 3})
    )
    caplog.set_level(logging.INFO)
    with pytest.raises(DocumentApiError, match="HTTP 400") as excinfo:
        submit(conn_id)
    logs = all_log_output(caplog, capfd)
    assert "HTTP 503" in logs
    assert "signature mismatch for key ***" in str(excinfo.value)
    for text in (error_texts(excinfo.value), logs):
        assert not [fragment for fragment in fragments(payload) if fragment in text]


def test_the_secrets_payload_is_known_to_the_secrets_masker(
    receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.log import redact

    payload = receiver.secret.removeprefix("whsec_")
    DocumentApiHook(set_connection(monkeypatch, "doc_api_mask", receiver.connection_dict(**FAST))).settings  # noqa: B018
    assert payload not in str(redact(f"the key is {payload}"))


# 3. Only an answer of the expected content type accepts the batch ---------------------------------


def test_html_200_is_not_an_acceptance_and_is_not_retried(
    receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    login_page = "<html><body><form>Please sign in to the corporate proxy</form></body></html>"
    receiver.script(Reply(200, login_page, content_type="text/html; charset=utf-8"))
    conn_id = set_connection(
        monkeypatch, "doc_api_html", receiver.connection_dict(**{**FAST, "max_retries": 3})
    )
    with pytest.raises(DocumentApiError) as excinfo:
        submit(conn_id)
    assert len(receiver.requests) == 1
    message = str(excinfo.value)
    for part in (receiver.url, "HTTP 200", "text/html", "application/json", "sign in to the corporate proxy"):
        assert part in message


def test_200_that_is_not_json_is_not_an_acceptance(
    receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.script(Reply(200, "OK"))
    conn_id = set_connection(monkeypatch, "doc_api_not_json", receiver.connection_dict(**FAST))
    with pytest.raises(DocumentApiError, match="not valid JSON"):
        submit(conn_id)
    assert len(receiver.requests) == 1


def test_expected_json_keys(receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = receiver.connection_dict(**FAST, expected_json_keys="status, id")
    conn_id = set_connection(monkeypatch, "doc_api_keys", conn)
    assert submit(conn_id).status_code == 200  # the receiver answers {"status": ..., "id": ...}
    receiver.script(Reply(200, json.dumps({"status": "queued"})))
    with pytest.raises(DocumentApiError, match="lacks key\\(s\\) id"):
        submit(conn_id)


def test_empty_204_is_accepted_only_when_configured(
    receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_content = Reply(204, "", content_type=None)
    receiver.script(no_content)
    strict = set_connection(monkeypatch, "doc_api_204_strict", receiver.connection_dict(**FAST))
    with pytest.raises(DocumentApiError, match="HTTP 204") as excinfo:
        submit(strict)
    assert "expected_content_type" in str(excinfo.value)
    receiver.script(no_content)
    lenient = receiver.connection_dict(**FAST, expected_content_type="*")
    assert submit(set_connection(monkeypatch, "doc_api_204_any", lenient)).status_code == 204


# 4. TLS certificates ------------------------------------------------------------------------------


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return write_self_signed_certificate(tmp_path)


def test_self_signed_certificate_fails_at_once_saying_how_to_trust_it(
    certificate: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    cert, key = certificate
    with DocumentApiReceiver(tls_cert=cert, tls_key=key) as receiver:
        conn_id = set_connection(
            monkeypatch, "doc_api_tls", receiver.connection_dict(**{**FAST, "max_retries": 3})
        )
        caplog.set_level(logging.INFO)
        with pytest.raises(DocumentApiError) as excinfo:
            submit(conn_id)
        assert receiver.connection_count == 1
        assert receiver.requests == []
        url = receiver.url
    message = str(excinfo.value)
    assert url in message
    assert "certificate" in message
    assert "ca_bundle" in message
    assert "Attempt 1" not in all_log_output(caplog, capfd)


def test_ca_bundle_trusts_a_self_signed_certificate(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    with DocumentApiReceiver(tls_cert=cert, tls_key=key) as receiver:
        conn = receiver.connection_dict(**FAST, ca_bundle=str(cert))
        result = submit(set_connection(monkeypatch, "doc_api_tls_ca", conn))
        (request,) = receiver.requests
        assert receiver.url.startswith("https://")
    assert request.valid, request.signature_error
    assert result.status_code == 200


def test_missing_ca_bundle_is_named(
    receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere.pem"
    conn_id = set_connection(
        monkeypatch, "doc_api_no_ca", receiver.connection_dict(**FAST, ca_bundle=str(missing))
    )
    with pytest.raises(DocumentApiError, match="ca_bundle") as excinfo:
        submit(conn_id)
    assert str(missing) in str(excinfo.value)
    assert "doc_api_no_ca" in str(excinfo.value)


# 5. Message ids cover the files' identities ------------------------------------------------------


def test_same_name_documents_of_different_size_get_two_ids(
    receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = set_connection(monkeypatch, "doc_api_ids", receiver.connection_dict(**FAST))
    first = [
        {
            "filename": "scan.pdf",
            "backup_path": "/in_progress/11252026/scan.pdf",
            "size": 1000,
            "mtime": 1.5e9,
        }
    ]
    second = [{**first[0], "size": 2000}]
    ids = [submit(conn_id, batch).message_id for batch in (first, second, first)]
    assert all(request.valid for request in receiver.requests)
    assert [request.message_id for request in receiver.requests] == ids
    assert ids[0] != ids[1]
    assert ids[0] == ids[2]
    assert receiver.requests[0].json() == receiver.requests[1].json()


# 5. Every exchange has a total deadline; a malformed acceptance is the batch's error -----------


def test_an_answer_trickling_in_is_cut_at_the_total_deadline_and_retried(
    receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 200 whose body arrives 1 byte / 0.3 s: each read is quick, so requests' timeout never fires."""
    conn_id = set_connection(monkeypatch, "doc_api_trickle", receiver.connection_dict(**FAST, timeout=1))
    receiver.script(Reply(trickle=0.3))

    result = submit(conn_id)

    assert (result.status_code, result.attempts) == (200, 2)
    assert len(receiver.accepted_ids) == 2


def test_an_answer_trickling_in_on_every_attempt_fails_the_batch_as_a_timeout(
    receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = set_connection(monkeypatch, "doc_api_trickle2", receiver.connection_dict(**FAST, timeout=1))
    receiver.script(Reply(trickle=0.3), Reply(trickle=0.3))

    with pytest.raises(DocumentApiError, match=r"no complete answer .* within 1 s") as failure:
        submit(conn_id)
    assert isinstance(failure.value.__cause__, DocumentApiTransientError)


def test_a_deeply_nested_acceptance_is_the_batchs_error_not_a_crash(
    receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.script(Reply(200, deeply_nested_json()))
    conn_id = set_connection(monkeypatch, "doc_api_nested", receiver.connection_dict(**FAST))
    with pytest.raises(DocumentApiError, match="not valid JSON"):
        submit(conn_id)
    assert len(receiver.requests) == 1
