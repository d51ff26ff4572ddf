"""The document API connection's Test button says exactly what it proved, against the real receiver."""

from __future__ import annotations

import json

import pytest

from airflow_outamation.hooks.document_api import DocumentApiHook
from airflow_outamation.redaction import secret_variants
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, Reply, new_secret


def _connection(
    monkeypatch: pytest.MonkeyPatch, receiver: DocumentApiReceiver, secret: str, **extras: object
) -> str:
    conn_id = "outamation_connection_test"
    conn = receiver.connection_dict(**extras)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({**conn, "password": secret}))
    return conn_id


def _leaks(message: str, *secrets: str) -> list[str]:
    return [variant for secret in secrets for variant in secret_variants(secret) if variant in message]


def test_without_verify_path_only_reachability_is_claimed(
    document_api_receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = new_secret()
    conn_id = _connection(monkeypatch, document_api_receiver, wrong)

    ok, message = DocumentApiHook(conn_id).test_connection()

    assert ok, message
    assert "reachable only (unsigned HEAD answered 204)" in message
    assert "secret was not checked" in message
    assert document_api_receiver.verifications == []
    assert not _leaks(message, wrong, document_api_receiver.secret)


def test_signed_request_accepted_with_the_right_secret(
    document_api_receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = _connection(
        monkeypatch, document_api_receiver, document_api_receiver.secret, verify_path="/verify"
    )

    ok, message = DocumentApiHook(conn_id).test_connection()

    assert ok, message
    assert message.startswith("signed request accepted:")
    assert f"127.0.0.1:{document_api_receiver.port}/verify" in message
    assert document_api_receiver.verifications == [True]
    assert not _leaks(message, document_api_receiver.secret)


def test_wrong_secret_is_refused_with_a_clear_message(
    document_api_receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = new_secret()
    conn_id = _connection(monkeypatch, document_api_receiver, wrong, verify_path="/verify")

    ok, message = DocumentApiHook(conn_id).test_connection()

    assert not ok
    assert message.startswith("signature refused: check the HMAC secret"), message
    assert "HTTP 401" in message
    assert repr(conn_id) in message
    assert document_api_receiver.verifications == [False]
    assert not _leaks(message, wrong, document_api_receiver.secret)


def test_a_verify_path_the_api_does_not_have_fails(
    document_api_receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = _connection(
        monkeypatch, document_api_receiver, document_api_receiver.secret, verify_path="/no-such-path"
    )

    ok, message = DocumentApiHook(conn_id).test_connection()

    assert not ok
    assert "no-such-path" in message
    assert "HTTP 404" in message


def test_an_answer_trickling_in_fails_the_test_at_the_total_deadline(
    document_api_receiver: DocumentApiReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = _connection(
        monkeypatch, document_api_receiver, document_api_receiver.secret, verify_path="/verify", timeout=1
    )
    document_api_receiver.script(Reply(trickle=0.3))

    ok, message = DocumentApiHook(conn_id).test_connection()

    assert not ok
    assert "within 1 s" in message
