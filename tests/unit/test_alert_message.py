"""What an alert message says: the condition, where to look and the error the failing task left."""

from __future__ import annotations

import json

import pytest

from airflow_outamation.alerts.check import AlertCheck
from airflow_outamation.alerts.delivery import CLEARED, STARTED, AlertMessage
from airflow_outamation.alerts.expectations import UNREACHABLE, Condition, Expectations
from airflow_outamation.operators.alerts import CheckAlertsOperator, task_error_line

DOWN = Condition(UNREACHABLE, UNREACHABLE, 0.0, "the SFTP server cannot be reached", "ConnectionRefusedError")


def test_a_started_message_names_the_failing_tasks_error_in_its_lines_and_json() -> None:
    error = "run manual__1: resend_unsent failed: SFTPConnectError: 127.0.0.1:2222 refused"
    message = AlertMessage("acme", STARTED, DOWN, "http://x/status", 60.0, task_error=error)
    assert ("Failing task", error) in message.lines()
    assert message.to_json()["task_error"] == error
    assert "resend_unsent failed" in message.to_html()


def test_a_message_without_a_failing_task_has_no_such_line() -> None:
    message = AlertMessage("acme", CLEARED, DOWN, "http://x/status", 60.0)
    assert "Failing task" not in dict(message.lines())
    assert message.to_json()["task_error"] == ""


def test_the_task_error_line_names_the_run_and_masks_secrets() -> None:
    error = "submit_batches failed: DocumentApiError: https://api/x?token=tok-123456 said whsec_c2VjcmV0"
    line = task_error_line("scheduled__2", error, ["tok-123456", "whsec_c2VjcmV0"])
    assert (
        line == "run scheduled__2: submit_batches failed: DocumentApiError: https://api/x?token=*** said ***"
    )


def test_a_long_task_error_is_cut() -> None:
    line = task_error_line("r", "x" * 5000, [])
    assert len(line) == 1000
    assert line.endswith("…")


def test_the_check_masks_the_projects_sftp_password_and_passphrase_and_the_apis_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sftp = {
        "conn_type": "sftp",
        "host": "h",
        "password": "sftp-pass-1",
        "extra": {"passphrase": "key-pass-2"},
    }
    api = {
        "conn_type": "outamation_document_api",
        "host": "https://api.test/in?token=api-token-3",
        "password": "hmac-4",
    }
    monkeypatch.setenv("AIRFLOW_CONN_MASKED_SFTP", json.dumps(sftp))
    monkeypatch.setenv("AIRFLOW_CONN_MASKED_API", json.dumps(api))
    check = AlertCheck("acme", "masked_sftp", "/up/in_progress", "%m%d%Y", Expectations())
    operator = CheckAlertsOperator(task_id="check_alerts", check=check, document_api_conn_id="masked_api")
    error = "resend_unsent failed: sftp-pass-1 key-pass-2 api-token-3 hmac-4"
    assert task_error_line("r", error, operator.secrets()) == "run r: resend_unsent failed: *** *** *** ***"
