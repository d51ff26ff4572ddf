"""DocumentApiHook's API keys and OAuth2 bearer tokens, against the real local receiver."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from airflow_outamation.exceptions import DocumentApiError, DocumentApiRejectedError
from airflow_outamation.hooks.document_api import BatchSubmission, DocumentApiHook
from airflow_outamation.signing import UNSIGNED, SigningScheme
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, Reply

FILES = [{"filename": "a.pdf", "source_path": "/in/a.pdf", "backup_path": "/in_progress/11252026/a.pdf"}]
API_KEY = "ak_live_0123456789abcdefghij"
CLIENT = ("outamation-client", "client-secret-0123456789abcdef")
FAST = {"profile_code": "p", "timeout": 5, "max_retries": 2, "backoff_initial": 0.01, "backoff_max": 0.1}


@pytest.fixture
def use_connection(monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    """Set an ``AIRFLOW_CONN_`` variable from a connection dict; return its conn id."""
    monkeypatch.delenv("DOC_AI_API_URL", raising=False)

    def use(conn: dict[str, Any], conn_id: str = "doc_api_auth") -> str:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    return use


def submit(conn_id: str, files: list[dict[str, str]] = FILES) -> BatchSubmission:
    hook = DocumentApiHook(conn_id)
    try:
        return hook.submit_batch(files, "Admin", "SFTP")
    finally:
        hook.close()


def test_api_key_is_sent_beside_the_signature(use_connection: Any) -> None:
    with DocumentApiReceiver(api_key=API_KEY) as receiver:
        submit(use_connection(receiver.connection_dict(**FAST)))
        (request,) = receiver.requests
    assert request.valid, (request.signature_error, request.auth_error)
    assert request.headers["X-API-Key"] == API_KEY
    assert request.headers["webhook-signature"].startswith("v1,")


def test_api_key_alone_from_the_password_in_a_configured_header(use_connection: Any) -> None:
    scheme = SigningScheme(UNSIGNED)
    with DocumentApiReceiver(scheme=scheme, api_key=API_KEY, api_key_header="X-Api-Token") as receiver:
        conn = receiver.connection_dict(**FAST)
        del conn["extra"]["api_key"]
        conn["password"] = API_KEY
        result = submit(use_connection(conn))
        (request,) = receiver.requests
    assert request.valid, request.auth_error
    assert request.headers["X-Api-Token"] == API_KEY
    assert request.message_id == result.message_id
    assert not any(name.lower().startswith("webhook-") for name in request.headers)


def test_a_missing_api_key_is_refused_at_once(use_connection: Any) -> None:
    with DocumentApiReceiver(api_key=API_KEY) as receiver:
        conn = receiver.connection_dict(**FAST)
        conn["extra"] = {k: v for k, v in conn["extra"].items() if k not in ("auth", "api_key")}
        with pytest.raises(DocumentApiRejectedError, match="HTTP 401"):
            submit(use_connection(conn))
        assert [r.auth_error for r in receiver.requests] == ["missing or wrong API key in X-API-Key"]


def test_api_key_mode_with_a_signature_needs_the_key_in_an_extra(use_connection: Any) -> None:
    with DocumentApiReceiver(api_key=API_KEY) as receiver:
        conn = receiver.connection_dict(**FAST)
        del conn["extra"]["api_key"]
        with pytest.raises(DocumentApiError, match="extra api_key") as excinfo:
            submit(use_connection(conn))
    assert receiver.secret not in str(excinfo.value)


def test_oauth2_token_is_fetched_once_and_reused(use_connection: Any) -> None:
    with DocumentApiReceiver(oauth2_client=CLIENT) as receiver:
        hook = DocumentApiHook(use_connection(receiver.connection_dict(**FAST)))
        for name in ("a.pdf", "b.pdf", "c.pdf"):
            hook.submit_batch([{"filename": name, "backup_path": f"/p/{name}"}], "Admin", "SFTP")
        hook.close()
        requests = receiver.requests
    assert len(receiver.issued_tokens) == 1
    assert all(r.valid for r in requests)
    assert {r.headers["Authorization"] for r in requests} == {f"Bearer {receiver.issued_tokens[0]}"}


def test_oauth2_refreshes_a_refused_token_once_under_the_same_id_and_attempt(use_connection: Any) -> None:
    with DocumentApiReceiver(oauth2_client=CLIENT) as receiver:
        hook = DocumentApiHook(use_connection(receiver.connection_dict(**FAST)))
        hook.submit_batch(FILES, "Admin", "SFTP")
        receiver.revoke_tokens()
        again = hook.submit_batch(FILES, "Admin", "SFTP")
        hook.close()
        requests = receiver.requests
    assert len(receiver.issued_tokens) == 2
    assert [r.reply.status for r in requests] == [200, 401, 200]
    assert {r.message_id for r in requests} == {again.message_id}
    assert again.attempts == 1
    assert requests[2].headers["Authorization"] == f"Bearer {receiver.issued_tokens[1]}"


def test_oauth2_a_second_401_fails_without_another_refresh(use_connection: Any) -> None:
    with DocumentApiReceiver(oauth2_client=CLIENT) as receiver:
        receiver.script(401, 401)
        with pytest.raises(DocumentApiRejectedError, match="HTTP 401"):
            submit(use_connection(receiver.connection_dict(**FAST)))
        assert len(receiver.requests) == 2
    assert len(receiver.issued_tokens) == 2


def test_oauth2_token_endpoint_outage_is_retried_as_an_attempt_of_the_same_batch(use_connection: Any) -> None:
    with DocumentApiReceiver(oauth2_client=CLIENT) as receiver:
        receiver.script_token_failures(503)
        result = submit(use_connection(receiver.connection_dict(**FAST)))
        (request,) = receiver.requests
    assert result.attempts == 2
    assert request.valid
    assert request.message_id == result.message_id
    assert len(receiver.issued_tokens) == 1


def test_oauth2_wrong_client_secret_fails_clearly(use_connection: Any) -> None:
    with DocumentApiReceiver(oauth2_client=CLIENT) as receiver:
        conn = receiver.connection_dict(**FAST)
        conn["extra"]["client_secret"] = "not-the-client-secret-at-all"
        with pytest.raises(DocumentApiError, match=r"token endpoint .* answered HTTP 401") as excinfo:
            submit(use_connection(conn))
        assert receiver.requests == []
    assert "not-the-client-secret-at-all" not in str(excinfo.value)


def test_oauth2_alone_takes_the_client_secret_from_the_password(use_connection: Any) -> None:
    with DocumentApiReceiver(scheme=SigningScheme(UNSIGNED), oauth2_client=CLIENT) as receiver:
        conn = receiver.connection_dict(**FAST)
        del conn["extra"]["client_secret"], conn["extra"]["client_id"]
        conn |= {"login": CLIENT[0], "password": CLIENT[1]}
        submit(use_connection(conn))
        (request,) = receiver.requests
    assert request.valid, request.auth_error


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"auth": "kerberos"}, "unknown auth 'kerberos'"),
        ({"auth": "oauth2", "client_id": "c", "client_secret": "s"}, "needs the extra token_url"),
        ({"auth": "oauth2", "token_url": "http://127.0.0.1:9/t", "client_secret": "s"}, "client id"),
    ],
)
def test_incomplete_auth_settings_are_named(use_connection: Any, extra: dict[str, str], message: str) -> None:
    conn = {"conn_type": "outamation_document_api", "host": "http://127.0.0.1:9/p", "password": "s3cret!"}
    conn_id = use_connection({**conn, "extra": {**FAST, **extra}})
    with pytest.raises(DocumentApiError, match=message):
        DocumentApiHook(conn_id).settings  # noqa: B018


def test_connection_test_sends_the_credentials(use_connection: Any) -> None:
    with DocumentApiReceiver(oauth2_client=CLIENT) as receiver:
        conn_id = use_connection(receiver.connection_dict(verify_path="/verify"))
        ok, message = DocumentApiHook(conn_id).test_connection()
    assert ok, message
    assert receiver.verifications == [True]


@pytest.mark.parametrize("mode", ["api-key", "oauth2"])
def test_credentials_never_in_logs_or_errors(
    use_connection: Any,
    mode: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    settings = {"api_key": API_KEY} if mode == "api-key" else {"oauth2_client": CLIENT}
    caplog.set_level(logging.DEBUG)
    with DocumentApiReceiver(**settings) as receiver:  # type: ignore[arg-type]
        receiver.script(Reply(503, echo_credentials=True), Reply(400, echo_credentials=True))
        conn_id = use_connection(receiver.connection_dict(**FAST))
        with pytest.raises(DocumentApiRejectedError, match="HTTP 400") as excinfo:
            submit(conn_id)
        secrets = [API_KEY, CLIENT[1], *receiver.issued_tokens, receiver.secret]
    assert "***" in str(excinfo.value)  # the API echoed a credential: it was masked
    captured = capfd.readouterr()
    texts = [
        str(excinfo.value),
        repr(excinfo.value),
        caplog.text + captured.out + captured.err,
        repr(DocumentApiHook(conn_id).settings),
    ]
    assert "HTTP 503" in texts[2]
    assert not [value for value in secrets for text in texts if value in text]
