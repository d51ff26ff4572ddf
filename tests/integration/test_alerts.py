"""
Alert checks on real SFTP servers: one message when a condition starts and one when it clears,
by email to a real SMTP server and by signed webhook to the local HTTP receiver.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_outamation.alerts.check import AlertCheck
from airflow_outamation.alerts.expectations import Expectations
from airflow_outamation.alerts.state import empty_state
from airflow_outamation.claims import record_sent
from airflow_outamation.exceptions import DocumentApiError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.document_api import SubmitBatchesOperator
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.pytest_plugin import set_airflow_connection
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.testing.smtp_server import SmtpTestServer

STATUS_URL = "http://airflow.test/outamation/status"


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


@pytest.fixture
def webhook_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[DocumentApiReceiver]:
    """The local HTTP receiver as an ``http`` connection ``alerts_hook`` (its secret as password)."""
    with DocumentApiReceiver(path="/alerts") as receiver:
        conn = {"conn_type": "http", "host": f"{receiver.url}", "password": receiver.secret}
        monkeypatch.setenv("AIRFLOW_CONN_ALERTS_HOOK", json.dumps(conn))
        yield receiver


def _check(conn_id: str, base: str, expectations: Expectations, targets: dict[str, Any]) -> AlertCheck:
    return AlertCheck("acme", conn_id, f"{base}/in_progress", "%m%d%Y", expectations, targets, STATUS_URL)


def _claim_today(
    server: SftpTestServer, base: str, conn_id: str, name: str = "doc.pdf"
) -> list[dict[str, Any]]:
    server.write(f"{base}/input/{name}", b"%PDF-1.7 " + name.encode())
    today = datetime.now(timezone.utc).strftime("%m%d%Y")
    hook = PooledSFTPHook(conn_id)
    claimed = hook.claim_files([f"{base}/input/{name}"], f"{base}/in_progress/{today}", f"claim_{name}")
    return [file.to_dict() for file in claimed]


def test_late_gives_one_email_and_one_webhook_when_it_starts_and_when_it_clears(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    smtp_server: SmtpTestServer,
    smtp_conn_id: str,
    webhook_receiver: DocumentApiReceiver,
) -> None:
    expect = Expectations(expect_files_by="00:00")  # due since midnight UTC, whenever the test runs
    check = _check(sftp_conn_id, sftp_base, expect, {"email": ["ops@example.com"], "webhook": "alerts_hook"})
    state = empty_state()
    for step in range(5):
        if step == 3:
            _claim_today(sftp_server, sftp_base, sftp_conn_id)
        state, _, failures = check.run(state, datetime.now(timezone.utc))
        assert failures == []

    late = "[outamation] acme: late: no file arrived by 00:00 (UTC)"
    assert smtp_server.subjects() == [late, late.replace("] ", "] CLEARED ", 1)]
    assert smtp_server.messages[0]["To"] == "ops@example.com"
    body = smtp_server.messages[0].get_payload()[0].get_payload(decode=True).decode()
    assert STATUS_URL in body
    assert f"{sftp_base}/in_progress" in body
    hooks = webhook_receiver.requests
    assert [(r.path, r.valid, r.json()["event"], r.json()["condition"]) for r in hooks] == [
        ("/alerts", True, "started", "late"),
        ("/alerts", True, "cleared", "late"),
    ]
    assert hooks[0].json()["since"] == hooks[1].json()["since"]
    assert state["open"] == {}
    today = datetime.now(timezone.utc).strftime("%m%d%Y")
    assert state["days"][today] == {"claimed": 1, "sent": 0, "rejected": 0, "slowest_wait": None}


def test_a_batch_unsent_past_max_unsent_age_and_a_refused_batch_alert_once(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    smtp_server: SmtpTestServer,
    smtp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    claimed = _claim_today(sftp_server, sftp_base, sftp_conn_id, "busy.pdf")
    claimed += _claim_today(sftp_server, sftp_base, sftp_conn_id, "bad.pdf")
    document_api_receiver.script_for_file("busy.pdf", 503, 503, 503, 503)
    document_api_receiver.script_for_file("bad.pdf", 400)
    submit = SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=claimed,
        uploaded_by="tester",
        source="SFTP",
        batch_size=1,
        document_api_conn_id=document_api_conn_id,
        sftp_conn_id=sftp_conn_id,
    )
    with pytest.raises(DocumentApiError):
        submit.execute({})  # type: ignore[arg-type]
    check = _check(sftp_conn_id, sftp_base, Expectations(max_unsent_age=60), {"email": ["ops@example.com"]})
    later = datetime.now(timezone.utc) + timedelta(minutes=5)

    state, _, _ = check.run(empty_state(), later)
    state, _, _ = check.run(state, later)
    subjects = smtp_server.subjects()
    assert sorted(s.split(":")[1].strip() for s in subjects) == ["rejected", "unsent"]
    unsent = next(m for m in smtp_server.messages if "unsent" in str(m["Subject"]))
    assert "HTTP 503" in unsent.get_payload()[0].get_payload(decode=True).decode()

    submit.execute({})  # type: ignore[arg-type]  # the API answers again: the busy batch is sent
    state, _, _ = check.run(state, later)
    state, _, _ = check.run(state, later)
    new = smtp_server.subjects()[len(subjects) :]
    assert [s.split(":")[0] for s in new] == ["[outamation] CLEARED acme"]
    assert "unsent" in new[0]
    assert [key.split(":")[0] for key in state["open"]] == ["rejected"]


def test_a_stopped_server_alerts_after_max_unreachable_and_clears_when_it_is_back(
    make_sftp_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    smtp_server: SmtpTestServer,
    smtp_conn_id: str,
) -> None:
    server = make_sftp_server("asyncssh")
    conn_id = set_airflow_connection(monkeypatch, "alerts_sftp", server)
    check = _check(conn_id, "/acme", Expectations(max_unreachable=300), {"email": ["ops@example.com"]})
    start = datetime.now(timezone.utc)
    state, _, _ = check.run(empty_state(), start)
    server.stop()
    PooledSFTPHook.close_all()
    state, _, _ = check.run(state, start)  # down since now: not yet an alert
    assert smtp_server.subjects() == []
    for minutes in (6, 7, 8):
        state, _, _ = check.run(state, start + timedelta(minutes=minutes))
    server.start()
    state, _, _ = check.run(state, start + timedelta(minutes=9))
    state, _, _ = check.run(state, start + timedelta(minutes=10))

    down = "[outamation] acme: unreachable: the SFTP server cannot be reached"
    assert smtp_server.subjects() == [down, down.replace("] ", "] CLEARED ", 1)]
    assert state == {**state, "open": {}, "failing_since": None}


def test_an_alert_the_smtp_server_did_not_take_is_sent_by_the_next_check(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    smtp_server: SmtpTestServer,
    smtp_conn_id: str,
) -> None:
    check = _check(
        sftp_conn_id, sftp_base, Expectations(expect_files_by="00:00"), {"email": ["ops@example.com"]}
    )
    smtp_server.stop()
    state, sent, failures = check.run(empty_state(), datetime.now(timezone.utc))
    assert (sent, state["open"]) == ([], {})
    assert "ConnectionRefusedError" in failures[0] or "SMTP" in failures[0]
    smtp_server.start()
    state, sent, failures = check.run(state, datetime.now(timezone.utc))
    state, _, _ = check.run(state, datetime.now(timezone.utc))
    assert failures == []
    assert smtp_server.subjects() == ["[outamation] acme: late: no file arrived by 00:00 (UTC)"]


def test_a_webhook_that_fails_is_named_without_its_urls_secrets(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with DocumentApiReceiver(path="/alerts") as receiver:
        conn = {
            "conn_type": "http",
            "host": f"{receiver.url}?token=s3cret-token",
            "password": receiver.secret,
        }
        monkeypatch.setenv("AIRFLOW_CONN_LEAKY_HOOK", json.dumps(conn))
        receiver.script(500)
        url = receiver.url
        check = _check(
            sftp_conn_id, sftp_base, Expectations(expect_files_by="00:00"), {"webhook": "leaky_hook"}
        )
        state, sent, failures = check.run(empty_state(), datetime.now(timezone.utc))
    assert (sent, state["open"]) == ([], {})
    assert f"webhook {url} (leaky_hook) answered HTTP 500" in failures[0]
    assert "s3cret" not in failures[0]


def test_each_days_slowest_wait_runs_from_the_files_upload_to_its_receipt(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    today = datetime.now(timezone.utc).strftime("%m%d%Y")
    claim_dir = f"{sftp_base}/in_progress/{today}"
    hook = PooledSFTPHook(sftp_conn_id)
    check = _check(sftp_conn_id, sftp_base, Expectations(), {})
    state, _, _ = check.run(empty_state(), datetime.now(timezone.utc))
    assert state["days"][today]["slowest_wait"] is None  # nothing sent yet

    for name, age in (("old.pdf", 3600), ("new.pdf", 60)):
        uploaded = time.time() - age  # the upload ended that long ago
        os.utime(sftp_server.write(f"{sftp_base}/input/{name}"), (uploaded, uploaded))
        claimed = hook.claim_files([f"{sftp_base}/input/{name}"], claim_dir, f"claim_{name}")
        hook.run_on_sftp(record_sent, claim_dir, f"msg_{name}", [file.to_dict() for file in claimed])
    state, _, _ = check.run(state, datetime.now(timezone.utc))

    wait = state["days"][today]["slowest_wait"]
    assert 3600 <= wait < 3600 + 300  # the older file's wait, from its upload to its receipt
