"""The task that checks a project's expectations and sends one message per alert started or cleared."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.definitions.context import Context
from airflow.sdk.types import RuntimeTaskInstanceProtocol

from airflow_outamation import metrics
from airflow_outamation.alerts.check import AlertCheck
from airflow_outamation.alerts.state import load_state, save_state
from airflow_outamation.exceptions import OutamationError
from airflow_outamation.hooks.credentials import SSHCredentials
from airflow_outamation.hooks.document_api import DocumentApiHook
from airflow_outamation.ingestion_status import FAILURE_KEY, dag_id_of, run_outcome
from airflow_outamation.redaction import Scrubber

#: Longest failing task's error a message quotes (the start names the task; the rest is in its log).
TASK_ERROR_LIMIT = 1000


class CheckAlertsOperator(BaseOperator):
    """
    Check a project's expectations against its ledger; send each alert once when it starts and once
    when it clears. The open alerts live in the project's alert Variable (:mod:`..alerts.state`).

    A message of an alert that starts quotes the errors the failed tasks of this run left so far, or
    else those of the run of the previous check, with the project's connection secrets masked.

    :param check: the project's :class:`~airflow_outamation.alerts.check.AlertCheck`
    :param document_api_conn_id: the project's document API connection, whose secrets are masked too
    :param api_url: the project's API URL, if its entry has one (its query and user info are masked)
    """

    ui_color = "#f9d6d5"

    def __init__(
        self,
        *,
        check: AlertCheck,
        document_api_conn_id: str | None = None,
        api_url: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.check = check
        self.document_api_conn_id = document_api_conn_id
        self.api_url = api_url

    def execute(self, context: Context) -> dict[str, Any]:
        """Check and keep the state; return the open alerts' keys and the messages sent."""
        project_id = self.check.project_id
        run_id = context["run_id"]
        state = load_state(project_id)
        task_error = self.task_error(context["ti"], [run_id, state["run_id"]])
        state, sent, failures = self.check.run(state, datetime.now(timezone.utc), task_error)
        save_state(project_id, {**state, "run_id": run_id})
        metrics.gauge(metrics.ALERTS_OPEN, len(state["open"]), dag_id_of(project_id))
        metrics.count(metrics.ALERTS_SENT, len(sent), dag_id_of(project_id))
        if failures:
            raise OutamationError("sending alerts failed: " + "; ".join(failures))
        return {"open": sorted(state["open"]), "sent": [message.subject for message in sent]}

    def task_error(self, ti: RuntimeTaskInstanceProtocol, run_ids: Iterable[str | None]) -> str:
        """The failed tasks' errors of the first of ``run_ids`` that has any, as one masked line."""
        for run_id in dict.fromkeys(run_id for run_id in run_ids if run_id):
            if error := run_failures(ti, self.dag_id, run_id):
                return task_error_line(run_id, error, self.secrets())
        return ""

    def secrets(self) -> list[str]:
        """The project's connection secrets: the SFTP password and passphrase, the API's secret and URL's."""
        secrets = []
        try:
            conn = BaseHook.get_connection(self.check.sftp_conn_id)
            credentials = SSHCredentials.from_connection(conn.login, conn.password, conn.extra_dejson)
            secrets += [credentials.password or "", credentials.passphrase or ""]
            if self.document_api_conn_id:
                hook = DocumentApiHook(self.document_api_conn_id, api_url=self.api_url)
                secrets += hook.settings.secrets
        except Exception:  # the secrets of a connection that cannot be read cannot be in its errors either
            pass
        return secrets


def run_failures(ti: RuntimeTaskInstanceProtocol, dag_id: str, run_id: str) -> str | None:
    """
    One line naming the tasks of a run that failed and the error each left as XCom ``failure``
    (:func:`~airflow_outamation.ingestion_status.run_outcome`), ``None`` when none failed.
    """
    states = ti.get_task_states(dag_id=dag_id, run_ids=[run_id]).get(run_id, {})
    failed = [task for task, state in states.items() if state == "failed"]
    errors = {task: ti.xcom_pull(task_ids=task, key=FAILURE_KEY, run_id=run_id) for task in failed}
    return run_outcome(states, errors)


def task_error_line(run_id: str, error: str, secrets: Iterable[str]) -> str:
    """``run <run_id>: <error>`` with ``secrets`` masked, cut to :data:`TASK_ERROR_LIMIT` characters."""
    line = Scrubber(secrets)(f"run {run_id}: {error}")
    return line if len(line) <= TASK_ERROR_LIMIT else line[: TASK_ERROR_LIMIT - 1] + "…"
