"""
What a check reads of a project's ledger on the SFTP server: today's claims, unsent and rejected
batches, and the chart's daily counts and slowest wait (one listing per record folder, few file reads).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import paramiko

from airflow_outamation.alerts.expectations import Facts, UnsentBatch
from airflow_outamation.claims import (
    REJECTED_DIR,
    claim_folders,
    folder_status,
    message_ids,
    open_batches,
    slowest_wait,
)

#: Days of history the status page's chart shows (today included).
CHART_DAYS = 14


def read_facts(
    sftp: paramiko.SFTPClient, in_progress_root: str, dates: Sequence[str], now: datetime
) -> tuple[Facts, dict[str, dict[str, Any]]]:
    """
    Read the dated claim folders named in ``dates`` (today first) under ``in_progress_root``.

    :param in_progress_root: the project's in-progress folder (``<base>/<in_progress>``)
    :param dates: folder names of the days to read, today first (:func:`status_dates`)
    :param now: the time of the check
    :return: the facts and, per date, ``{"claimed", "sent", "rejected"}`` (missing days count 0) and
        ``slowest_wait`` (seconds, :func:`~airflow_outamation.claims.slowest_wait`; ``None`` without one)
    """
    wanted = set(dates)
    unsent: dict[str, UnsentBatch] = {}
    rejected: dict[str, str] = {}
    days: dict[str, dict[str, Any]] = {
        date: {"claimed": 0, "sent": 0, "rejected": 0, "slowest_wait": None} for date in dates
    }
    for folder in claim_folders(sftp, in_progress_root):
        date = posixpath.basename(folder)
        if date not in wanted:
            continue
        counts = folder_status(sftp, folder)
        days[date] = {key: counts[key] for key in ("claimed", "sent", "rejected")}
        days[date]["slowest_wait"] = slowest_wait(sftp, folder)
        for message_id, batch in open_batches(sftp, folder).items():
            if not batch["sent"]:
                last = batch["last_failure"] or {}
                unsent[message_id] = UnsentBatch(
                    float(batch["recorded_at"]), _failure(last), last.get("status")
                )
        rejected.update(dict.fromkeys(message_ids(sftp, folder, REJECTED_DIR), folder))
    facts = Facts(
        now=now,
        folder=in_progress_root,
        claimed_today=days[dates[0]]["claimed"],
        unsent=unsent,
        rejected=rejected,
    )
    return facts, days


def _failure(record: dict[str, Any]) -> str | None:
    if not record:
        return None
    status = record.get("status")
    answer = record.get("answer") or ""
    return f"HTTP {status}: {answer}" if status else answer or None
