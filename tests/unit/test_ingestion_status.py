"""The status page's rows: counts from a project status, dates per time zone, failure reasons from logs."""

from __future__ import annotations

from datetime import datetime, timezone

from airflow_outamation.ingestion_status import (
    DAG_ID_PREFIX,
    LastRun,
    dag_id_of,
    failure_reason,
    placeholder_dag_id,
    project_row,
    status_dates,
)

STATUS = {
    "ready": 4,
    "folders": {
        "11262026": {"claimed": 3, "sent": 1, "unsent": 2, "rejected": 0, "completed": 0},
        "11252026": {"claimed": 5, "sent": 3, "unsent": 0, "rejected": 2, "completed": 0},
    },
    "total": {"claimed": 8, "sent": 4, "unsent": 2, "rejected": 2, "completed": 0},
}


def test_row_counts_today_and_the_recent_days() -> None:
    run = LastRun("manual__1", "failed", None, "submit_batches", "DocumentApiRejectedError: HTTP 422")
    row = project_row("acme", "/dags/x", STATUS, "11262026", run)
    assert (row.waiting, row.claimed_today, row.sent, row.unsent, row.rejected) == (4, 3, 4, 2, 2)
    assert row.too_old == 0  # no max_age: nothing is too old
    assert row.dag_id == dag_id_of("acme") == "outamation_sftp_ingest_acme"
    assert row.to_dict()["last_run"]["failed_task"] == "submit_batches"


def test_row_of_a_day_without_claims_counts_zero_claimed_today() -> None:
    assert project_row("acme", "/dags/x", STATUS, "11272026", None).claimed_today == 0


def test_row_without_status_keeps_the_error_and_no_counts() -> None:
    row = project_row("acme", "/dags/x", None, "11262026", None, "TimeoutError: no answer within 3 s")
    assert row.to_dict() == {
        "project_id": "acme",
        "dag_id": "outamation_sftp_ingest_acme",
        "dag_url": "/dags/x",
        "waiting": None,
        "too_old": None,
        "claimed_today": None,
        "sent": None,
        "unsent": None,
        "rejected": None,
        "last_run": None,
        "error": "TimeoutError: no answer within 3 s",
        "counting": False,
    }


def test_status_dates_follow_the_project_time_zone_and_format() -> None:
    now = datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)  # still the 26th in New York
    assert status_dates(now, "America/New_York", "%m%d%Y", days=3) == ["11262026", "11252026", "11242026"]
    assert status_dates(now, "UTC", "%Y-%m-%d", days=1) == ["2026-11-27"]


def test_placeholder_dag_id_names_the_invalid_entry() -> None:
    assert placeholder_dag_id("acme", 2) == "outamation_sftp_ingest-invalid-2-acme"
    assert placeholder_dag_id(None, 2) == "outamation_sftp_ingest-invalid-2"


def test_a_placeholder_dag_id_never_equals_a_projects_dag_id() -> None:
    """A project's DAG id has '_' after the prefix's stem, a placeholder '-'; entries differ by index."""
    assert placeholder_dag_id("acme", 2) != dag_id_of("acme_invalid")
    assert placeholder_dag_id("acme", 2) != placeholder_dag_id("acme", 3)
    assert not placeholder_dag_id("x", 0).startswith(DAG_ID_PREFIX)


def test_failure_reason_is_the_raised_exception_not_its_cause() -> None:
    records = [
        {"event": "Claimed 2 of 2 file(s)", "level": "info"},
        {
            "event": "Task failed with exception",
            "level": "error",
            "error_detail": [  # as structlog lists a chain: the raised one, then causes and contexts
                {"exc_type": "DocumentApiRejectedError", "exc_value": "batch 1/1 refused", "is_cause": False},
                {"exc_type": "HTTPError", "exc_value": "422 Client Error", "is_cause": True},
                {"exc_type": "KeyError", "exc_value": "'id'", "is_cause": False},
            ],
        },
    ]
    assert failure_reason(records) == "DocumentApiRejectedError: batch 1/1 refused"


def test_failure_reason_falls_back_to_the_last_error_line_and_is_bounded() -> None:
    assert failure_reason([{"event": "fine", "level": "info"}]) is None
    records = [{"event": "x" * 500, "level": "error"}]
    reason = failure_reason(records, limit=50)
    assert reason is not None
    assert len(reason) == 50
    assert reason.endswith("…")


def test_the_status_page_knows_the_reads_of_an_entry_with_lists_and_dicts() -> None:
    """An entry with alert keys (a list, a dict) is unhashable: the status page keys reads by a digest."""
    from airflow_outamation.plugins.status_data import _read_key
    from airflow_outamation.projects import Project, parse_entry

    entry = {
        "project_id": "al",
        "sftp_conn_id": "s",
        "document_api_conn_id": "a",
        "base_path": "/al",
        "profile_code": "p",
        "expect_files_on": ["mon", "tue"],
        "alert_targets": {"email": ["ops@example.com"]},
    }
    project = parse_entry(entry, 0)
    assert isinstance(project, Project)
    assert _read_key(project, ["12052026"]) == _read_key(parse_entry(entry, 0), ["12052026"])  # type: ignore[arg-type]
    assert _read_key(project, ["12052026"]) != _read_key(project, ["12062026"])
