"""
One check of a project: read its ledger, judge its expectations, send a message per alert started or
cleared, and return the state the next check starts from (:mod:`.state` keeps it).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airflow_outamation.alerts.delivery import CLEARED, STARTED, AlertMessage, deliver, status_page_url
from airflow_outamation.alerts.expectations import Expectations, Facts, evaluate, transition
from airflow_outamation.alerts.facts import CHART_DAYS, read_facts
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.ingestion_status import status_dates
from airflow_outamation.projects import Project

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertCheck:
    """
    What a check needs to know of a project.

    :param project_id: the project
    :param sftp_conn_id: Airflow ``sftp`` connection
    :param in_progress_root: the project's in-progress folder (``<base>/<in_progress>``)
    :param date_format: ``strftime`` format of its dated claim folders
    :param expectations: what it promises
    :param alert_targets: where messages go (``email``, ``webhook``, ``smtp_conn_id``); empty: nowhere
    :param status_url: the status page, linked from every message; empty: :func:`status_page_url`
    """

    project_id: str
    sftp_conn_id: str
    in_progress_root: str
    date_format: str
    expectations: Expectations
    alert_targets: Mapping[str, Any] = field(default_factory=dict)
    status_url: str = ""

    def run(
        self, state: Mapping[str, Any], now: datetime, task_error: str = ""
    ) -> tuple[dict[str, Any], list[AlertMessage], list[str]]:
        """
        Check once.

        A message whose delivery failed leaves its alert as it was (not open when it started, still
        open when it cleared), so the next check sends it again.

        :param state: the last check's state (:func:`.state.load_state`)
        :param now: the time of the check (aware)
        :param task_error: the error a failing task of the project left, named in the messages of
            alerts that start (secrets already masked)
        :return: the new state, the messages sent, and one line per message that could not be sent
        """
        facts, days = self.read(now, state.get("failing_since"))
        found, judged = evaluate(self.expectations, facts)
        still_open, started, cleared = transition(state.get("open", {}), found, judged)
        sent, failures = [], []
        for event, condition in [(STARTED, c) for c in started] + [(CLEARED, c) for c in cleared]:
            status_url = self.status_url or status_page_url()
            error = task_error if event == STARTED else ""
            message = AlertMessage(self.project_id, event, condition, status_url, now.timestamp(), error)
            log.warning("%s", message.subject)
            try:
                if self.alert_targets:
                    deliver(message, self.alert_targets)
                sent.append(message)
            except Exception as exc:  # one undeliverable message must not lose the state of the others
                failures.append(f"{message.subject}: {type(exc).__name__}: {exc}")
                if event == STARTED:
                    still_open.pop(condition.key, None)
                else:
                    still_open[condition.key] = condition.to_dict()
        new_state = {
            "open": still_open,
            "failing_since": facts.failing_since if facts.error else None,
            "days": days or state.get("days", {}),
            "checked_at": now.isoformat(timespec="seconds"),
        }
        return new_state, sent, failures

    def read(self, now: datetime, failing_since: float | None) -> tuple[Facts, dict[str, Any]]:
        """The ledger's facts and daily counts, or the server's error and since when reads fail."""
        dates = status_dates(now, self.expectations.timezone, self.date_format, CHART_DAYS)
        hook = PooledSFTPHook(ssh_conn_id=self.sftp_conn_id)
        try:
            return hook.run_on_sftp(read_facts, self.in_progress_root, dates, now)
        except Exception as exc:  # any failure to read the server is what ``unreachable`` is about
            log.warning("reading %s failed: %s: %s", self.in_progress_root, type(exc).__name__, exc)
            since = failing_since if failing_since is not None else now.timestamp()
            error = f"{type(exc).__name__}: {exc}"
            return Facts(now, self.in_progress_root, error=error, failing_since=since), {}


def project_expectations(project: Project) -> Expectations:
    """A project entry's expectations."""
    names = {f.name for f in dataclasses.fields(Expectations)}
    return Expectations(**{name: getattr(project, name) for name in names})
