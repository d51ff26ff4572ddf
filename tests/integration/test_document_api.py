"""DocumentApiHook against the real local receiver: signing, retries, errors and secrets."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pytest

from airflow_outamation.exceptions import DocumentApiError
from airflow_outamation.hooks.document_api import (
    BatchSubmission,
    DocumentApiHook,
    build_payload,
    display_url,
    retry_after_seconds,
)
from airflow_outamation.signing import GITHUB, HEX_HMAC, SLACK, STRIPE, UNSIGNED, SigningScheme, message_id
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, Reply

FILES = [
    {
        "filename": "a.pdf",
        "source_path": "/in/a.pdf",
        "backup_path": "/in_progress/11252026/a.pdf",
        "size": 3,
    },
    {
        "filename": "b.pdf",
        "source_path": "/in/b.pdf",
        "backup_path": "/in_progress/11252026/b.pdf",
        "size": 4,
    },
]


def all_log_output(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Standard logging records plus what Airflow's structlog loggers printed."""
    captured = capfd.readouterr()
    return caplog.text + captured.out + captured.err


def submit(conn_id: str, **hook_kwargs: Any) -> BatchSubmission:
    hook = DocumentApiHook(conn_id, **hook_kwargs)
    try:
        return hook.submit_batch(FILES, "Admin", "SFTP")
    finally:
        hook.close()


def test_submit_posts_the_seed_payload_signed(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    result = submit(document_api_conn_id)
    (request,) = document_api_receiver.requests
    assert request.valid, request.signature_error
    assert request.path == "/process"
    assert request.json() == {
        "files": [
            {"filename": "a.pdf", "backup_path": "/in_progress/11252026/a.pdf"},
            {"filename": "b.pdf", "backup_path": "/in_progress/11252026/b.pdf"},
        ],
        "uploaded_by": "Admin",
        "source": "SFTP",
        "profile_code": "test_profile",
    }
    assert request.message_id == message_id(request.json(), FILES)
    assert result.summary() == {
        "message_id": request.message_id,
        "status": 200,
        "file_count": 2,
        "attempts": 1,
    }


def test_retries_503_under_one_message_id_each_attempt_signed_afresh(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    document_api_receiver.script(503, 503, 200)
    result = submit(document_api_conn_id)
    requests = document_api_receiver.requests
    assert [r.reply.status for r in requests] == [503, 503, 200]
    assert all(r.valid for r in requests)
    assert len({r.message_id for r in requests}) == 1
    assert result.attempts == 3


def test_rerun_of_the_same_batch_sends_the_same_id(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    submit(document_api_conn_id)
    submit(document_api_conn_id)
    first, second = document_api_receiver.requests
    assert first.message_id == second.message_id


def test_400_fails_at_once_naming_status_url_and_body(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    document_api_receiver.script(Reply(400, json.dumps({"error": "unknown profile_code"})))
    with pytest.raises(DocumentApiError) as excinfo:
        submit(document_api_conn_id)
    assert len(document_api_receiver.requests) == 1
    message = str(excinfo.value)
    assert "HTTP 400" in message
    assert document_api_receiver.url in message
    assert "unknown profile_code" in message


def test_long_error_body_is_truncated(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    document_api_receiver.script(Reply(422, "x" * 5000))
    with pytest.raises(DocumentApiError, match="HTTP 422") as excinfo:
        submit(document_api_conn_id)
    assert "x" * 500 in str(excinfo.value)
    assert "x" * 501 not in str(excinfo.value)
    assert "4500 more characters" in str(excinfo.value)


def test_redirect_is_not_followed(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    document_api_receiver.script(Reply(302, ""))
    with pytest.raises(DocumentApiError, match="HTTP 302"):
        submit(document_api_conn_id)
    assert len(document_api_receiver.requests) == 1


def test_gives_up_after_max_retries_naming_the_last_status(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    document_api_receiver.script(*[Reply(500, "database is down")] * 3)
    with pytest.raises(DocumentApiError, match="after 3 attempts") as excinfo:
        submit(document_api_conn_id, max_retries=2)
    assert "HTTP 500" in str(excinfo.value)
    assert "database is down" in str(excinfo.value)
    assert len(document_api_receiver.requests) == 3


@pytest.mark.parametrize("status", [408, 429, 502, 504])
def test_transient_statuses_are_retried(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str, status: int
) -> None:
    document_api_receiver.script(status)
    submit(document_api_conn_id)
    assert [r.reply.status for r in document_api_receiver.requests] == [status, 200]


def test_429_waits_at_least_retry_after(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    document_api_receiver.script(Reply(429, retry_after="1"))
    started = time.monotonic()
    submit(document_api_conn_id, backoff_max=2)
    assert time.monotonic() - started >= 1.0
    assert len(document_api_receiver.requests) == 2


def test_dropped_connection_is_retried(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    document_api_receiver.script(Reply(drop=True))
    result = submit(document_api_conn_id)
    requests = document_api_receiver.requests
    assert [r.reply.drop for r in requests] == [True, False]
    assert requests[0].message_id == requests[1].message_id
    assert result.status_code == 200


def test_timeout_is_retried(document_api_receiver: DocumentApiReceiver, document_api_conn_id: str) -> None:
    document_api_receiver.script(Reply(delay=3))
    result = submit(document_api_conn_id, timeout=0.3)
    assert len(document_api_receiver.requests) == 2
    assert result.attempts == 2


def test_unreachable_api_names_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with DocumentApiReceiver() as receiver:
        conn = receiver.connection_json(profile_code="p", max_retries=1, backoff_initial=0.01)
        url = receiver.url
    monkeypatch.setenv("AIRFLOW_CONN_DOC_API_GONE", conn)
    monkeypatch.delenv("DOC_AI_API_URL", raising=False)
    with pytest.raises(DocumentApiError, match="after 2 attempts") as excinfo:
        submit("doc_api_gone")
    assert f"could not reach {url}" in str(excinfo.value)


def test_secret_never_in_logs_or_errors(
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    secret = document_api_receiver.secret
    document_api_receiver.script(Reply(503, f"echo {secret}"), Reply(401, f"bad secret {secret}"))
    caplog.set_level(logging.DEBUG)
    with pytest.raises(DocumentApiError) as excinfo:
        submit(document_api_conn_id)
    assert "HTTP 401" in str(excinfo.value)
    logs = all_log_output(caplog, capfd)
    texts = [
        str(excinfo.value),
        repr(excinfo.value),
        logs,
        repr(DocumentApiHook(document_api_conn_id).settings),
    ]
    texts += [str(e) for e in (excinfo.value.__cause__, excinfo.value.__context__) if e]
    assert all(secret not in text for text in texts)
    assert "HTTP 503" in logs


def test_secret_is_known_to_the_secrets_masker(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    from airflow.sdk.log import redact

    secret = document_api_receiver.secret
    DocumentApiHook(document_api_conn_id).settings  # noqa: B018
    assert secret not in str(redact(f"the secret is {secret}"))


def test_hex_hmac_scheme_with_custom_header(monkeypatch: pytest.MonkeyPatch) -> None:
    scheme = SigningScheme(HEX_HMAC, signature_header="X-Outamation-Signature")
    with DocumentApiReceiver(secret="plain text secret", scheme=scheme) as receiver:
        monkeypatch.setenv("AIRFLOW_CONN_DOC_API_HEX", receiver.connection_json(profile_code="p"))
        monkeypatch.delenv("DOC_AI_API_URL", raising=False)
        submit("doc_api_hex")
        (request,) = receiver.requests
    assert request.valid, request.signature_error
    assert request.headers["X-Outamation-Signature"].startswith("sha256=")


@pytest.mark.parametrize("name", [GITHUB, STRIPE, SLACK, UNSIGNED])
def test_each_signing_preset_is_sent_and_verified(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    with DocumentApiReceiver(scheme=SigningScheme(name)) as receiver:
        monkeypatch.setenv("AIRFLOW_CONN_DOC_API_PRESET", receiver.connection_json(profile_code="p"))
        monkeypatch.delenv("DOC_AI_API_URL", raising=False)
        result = submit("doc_api_preset")
        (request,) = receiver.requests
    assert request.valid, request.signature_error
    assert request.message_id == result.message_id
    assert result.status_code == 200


@pytest.mark.parametrize("name", [GITHUB, STRIPE, SLACK])
def test_each_signing_preset_refuses_a_wrong_secret(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    with DocumentApiReceiver(scheme=SigningScheme(name)) as receiver:
        conn = {**receiver.connection_dict(profile_code="p"), "password": "not the receiver's secret"}
        monkeypatch.setenv("AIRFLOW_CONN_DOC_API_PRESET_WRONG", json.dumps(conn))
        monkeypatch.delenv("DOC_AI_API_URL", raising=False)
        with pytest.raises(DocumentApiError, match="HTTP 401"):
            submit("doc_api_preset_wrong")
        (request,) = receiver.requests
    assert request.signature_error == "no signature matches the body"


def test_receiver_rejects_a_wrong_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    with DocumentApiReceiver() as receiver:
        conn = {**receiver.connection_dict(profile_code="p"), "password": "not the receiver's secret"}
        monkeypatch.setenv("AIRFLOW_CONN_DOC_API_WRONG", json.dumps(conn))
        monkeypatch.delenv("DOC_AI_API_URL", raising=False)
        with pytest.raises(DocumentApiError, match="HTTP 401"):
            submit("doc_api_wrong")
        (request,) = receiver.requests
    assert not request.valid


def test_api_url_argument_beats_the_connection_and_doc_ai_api_url(
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOC_AI_API_URL", document_api_receiver.url.replace("/process", "/env"))
    submit(document_api_conn_id, api_url=document_api_receiver.url.replace("/process", "/project"))
    assert [r.path for r in document_api_receiver.requests] == ["/project"]


def test_the_connection_url_beats_doc_ai_api_url(
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DOC_AI_API_URL used to override every project's connection."""
    monkeypatch.setenv("DOC_AI_API_URL", document_api_receiver.url.replace("/process", "/env"))
    submit(document_api_conn_id)
    assert [r.path for r in document_api_receiver.requests] == ["/process"]


def test_doc_ai_api_url_fills_in_for_a_connection_without_url(
    document_api_receiver: DocumentApiReceiver,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    conn = document_api_receiver.connection_dict(profile_code="p")
    del conn["host"]
    monkeypatch.setenv("AIRFLOW_CONN_DOC_API_NO_HOST", json.dumps(conn))
    monkeypatch.setenv("DOC_AI_API_URL", document_api_receiver.url.replace("/process", "/env"))
    caplog.set_level(logging.INFO)
    submit("doc_api_no_host")
    assert [r.path for r in document_api_receiver.requests] == ["/env"]
    assert "has no URL: posting to" in all_log_output(caplog, capfd)


def test_profile_code_argument_beats_the_connection(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    hook = DocumentApiHook(document_api_conn_id)
    hook.submit_batch(FILES, "Admin", "SFTP", profile_code="explicit")
    hook.submit_batch(FILES, "Admin", "SFTP")
    first, second = document_api_receiver.requests
    assert first.json()["profile_code"] == "explicit"
    assert second.json()["profile_code"] == "test_profile"
    assert first.message_id != second.message_id


def test_test_connection(document_api_receiver: DocumentApiReceiver, document_api_conn_id: str) -> None:
    ok, message = DocumentApiHook(document_api_conn_id).test_connection()
    assert ok, message
    assert document_api_receiver.url in message


def test_test_connection_reports_a_missing_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_DOC_API_NO_SECRET", json.dumps({"conn_type": "outamation_document_api"}))
    ok, message = DocumentApiHook("doc_api_no_secret").test_connection()
    assert not ok
    assert "no HMAC secret" in message


@pytest.mark.parametrize(
    ("host", "schema", "port", "expected"),
    [
        ("https://api.example.com/process", None, None, "https://api.example.com/process"),
        ("api.example.com", None, None, "https://api.example.com"),
        ("127.0.0.1", "http", 8080, "http://127.0.0.1:8080"),
    ],
)
def test_url_from_connection_fields(
    monkeypatch: pytest.MonkeyPatch, host: str, schema: str | None, port: int | None, expected: str
) -> None:
    conn = {
        "conn_type": "outamation_document_api",
        "host": host,
        "schema": schema,
        "port": port,
        "password": "s",
    }
    monkeypatch.setenv("AIRFLOW_CONN_DOC_API_URL_TEST", json.dumps(conn))
    monkeypatch.delenv("DOC_AI_API_URL", raising=False)
    assert DocumentApiHook("doc_api_url_test").settings.url == expected


def test_bad_extras_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "outamation_document_api",
        "host": "h",
        "password": "s",
        "extra": {"max_retries": -1},
    }
    monkeypatch.setenv("AIRFLOW_CONN_DOC_API_BAD", json.dumps(conn))
    with pytest.raises(DocumentApiError, match="max_retries must not be negative"):
        DocumentApiHook("doc_api_bad").settings  # noqa: B018


def test_payload_validation_and_helpers() -> None:
    with pytest.raises(ValueError, match="file #1 of the batch has no backup_path"):
        build_payload([FILES[0], {"filename": "c.pdf"}], "u", "s", "p")
    with pytest.raises(ValueError, match="at least one file"):
        build_payload([], "u", "s", "p")
    assert display_url("https://user:pw@api.example.com:8443/p?token=t#x") == "https://api.example.com:8443/p"
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
