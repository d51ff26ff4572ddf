"""
Rows of the ingestion status page, one per project: counts, last run, failure reason (no I/O).

The page's data comes from three places (the SFTP folders through the pooled hook, Airflow's
metadata database, the failed task's log); this module only shapes what they returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

#: Every project's DAG id is this prefix and its ``project_id`` (see the example DAG).
DAG_ID_PREFIX = "outamation_sftp_ingest_"
#: Every invalid entry's placeholder DAG id starts so: ``-`` where a project's DAG id has ``_``.
PLACEHOLDER_PREFIX = "outamation_sftp_ingest-invalid-"
#: How many days of dated claim folders the sent, unsent and rejected counts cover (today included).
STATUS_DAYS = 7
#: Longest failure reason kept (the page folds long ones; the fix is often at the end).
REASON_LIMIT = 4000
#: The XCom key under which a failed task of the example DAG leaves its error (one line).
FAILURE_KEY = "failure"
#: The example DAG's last task: it fails the run naming the tasks that failed before it.
OUTCOME_TASK = "check_run"


@dataclass(frozen=True)
class LastRun:
    """
    A project's most recent DAG run.

    :param run_id: the run's id
    :param state: ``queued``, ``running``, ``success`` or ``failed``
    :param started: when it was due (ISO 8601), if known
    :param failed_task: the first task that failed in it, if any
    :param error: why that task failed (exception type and message), if its log says
    """

    run_id: str
    state: str
    started: str | None = None
    failed_task: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class ProjectRow:
    """
    One project on the status page; the counts are ``None`` when its folders could not be read.

    :param project_id: the entry's ``project_id``
    :param dag_id: its DAG's id
    :param dag_url: the DAG's page in the Airflow UI
    :param waiting: files in its input folder that can become ready (pattern, size; no temporary names)
    :param too_old: files in its input folder older than its ``max_age``, left alone
    :param claimed_today: files claimed today (in the project's time zone)
    :param sent: files of the last :data:`STATUS_DAYS` days whose batch the API accepted
    :param unsent: claimed files of those days neither sent nor rejected
    :param rejected: files of those days whose batch was given up on (moved to ``rejected/``)
    :param last_run: the most recent run, ``None`` when it never ran
    :param error: why the counts are missing (folder unreadable, server silent, invalid entry)
    :param counting: the counts are missing because the first read of its folders is still running
    """

    project_id: str
    dag_id: str
    dag_url: str
    waiting: int | None = None
    too_old: int | None = None
    claimed_today: int | None = None
    sent: int | None = None
    unsent: int | None = None
    rejected: int | None = None
    last_run: LastRun | None = None
    error: str | None = None
    counting: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values."""
        return asdict(self)


def dag_id_of(project_id: str) -> str:
    """The DAG id of a project."""
    return f"{DAG_ID_PREFIX}{project_id}"


def placeholder_dag_id(project_id: str | None, index: int | None) -> str:
    """
    The DAG id of the placeholder the example DAG makes for an invalid entry.

    It never equals a project's DAG id (:data:`PLACEHOLDER_PREFIX` is no prefix of those), and the
    entry's index tells two invalid entries with one ``project_id`` apart.

    :param project_id: the entry's usable ``project_id``, if any
    :param index: the entry's position in the projects file
    """
    return f"{PLACEHOLDER_PREFIX}{index}" + (f"-{project_id}" if project_id else "")


def status_dates(now: datetime, timezone: str, date_format: str, days: int = STATUS_DAYS) -> list[str]:
    """
    The names of the dated claim folders of the last ``days`` days, today first.

    :param now: the current time (aware)
    :param timezone: the project's IANA time zone
    :param date_format: the project's ``strftime`` format of folder names
    :param days: how many days, today included
    """
    today = now.astimezone(ZoneInfo(timezone))
    return [(today - timedelta(days=back)).strftime(date_format) for back in range(days)]


def project_row(
    project_id: str,
    dag_url: str,
    status: Mapping[str, Any] | None,
    today: str,
    last_run: LastRun | None,
    error: str | None = None,
) -> ProjectRow:
    """
    Assemble a project's row.

    :param project_id: the project
    :param dag_url: its DAG's page in the UI
    :param status: what ``PooledSFTPHook.project_status`` returned for its recent date folders, or ``None``
    :param today: the name of today's date folder
    :param last_run: its most recent run
    :param error: why ``status`` is missing
    """
    row = ProjectRow(project_id, dag_id_of(project_id), dag_url, last_run=last_run, error=error)
    if status is None:
        return row
    total = status["total"]
    return ProjectRow(
        project_id,
        row.dag_id,
        dag_url,
        waiting=status["ready"],
        too_old=status.get("too_old", 0),
        claimed_today=status["folders"].get(today, {}).get("claimed", 0),
        sent=total["sent"],
        unsent=total["unsent"],
        rejected=total["rejected"],
        last_run=last_run,
        error=error,
    )


def failure_reason(records: Iterable[Mapping[str, Any]], limit: int = REASON_LIMIT) -> str | None:
    """
    Why a task failed, from its structured log records: the last exception's type and message.

    Airflow's task runner logs "Task failed with exception" with an ``error_detail`` list: the raised
    exception first, then its causes and contexts; without one, the last error record's text is the reason.

    :param records: the log's records (``event``, ``level``, ``error_detail``, ...)
    :param limit: longest reason returned; longer ones are cut with an ellipsis
    """
    reason = None
    for record in records:
        details = record.get("error_detail")
        if isinstance(details, list) and details:
            raised = details[0] if isinstance(details[0], dict) else {}
            reason = f"{raised.get('exc_type', 'Error')}: {raised.get('exc_value', '')}".rstrip(": ")
        elif str(record.get("level", "")).lower() in ("error", "critical") and record.get("event"):
            reason = str(record["event"])
    if reason is not None and len(reason) > limit:
        return reason[: limit - 1] + "…"
    return reason


def run_outcome(states: Mapping[str, str | None], errors: Mapping[str, str | None]) -> str | None:
    """
    One line naming a run's failed tasks and their errors, or ``None`` when none failed.

    :param states: task id -> its state in the run (:data:`OUTCOME_TASK` is left out)
    :param errors: task id -> the error it left as XCom :data:`FAILURE_KEY`, if any
    """
    failed = [task for task, state in states.items() if state == "failed" and task != OUTCOME_TASK]
    if not failed:
        return None
    return "; ".join(f"{task} failed: {errors.get(task) or 'see its log'}" for task in failed)
