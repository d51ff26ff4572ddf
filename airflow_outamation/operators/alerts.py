"""The task that checks a project's expectations and sends one message per alert started or cleared."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from airflow.sdk.bases.operator import BaseOperator
from airflow.sdk.definitions.context import Context

from airflow_outamation import metrics
from airflow_outamation.alerts.check import AlertCheck
from airflow_outamation.alerts.state import load_state, save_state
from airflow_outamation.exceptions import OutamationError
from airflow_outamation.ingestion_status import dag_id_of


class CheckAlertsOperator(BaseOperator):
    """
    Check a project's expectations against its ledger; send each alert once when it starts and once
    when it clears. The open alerts live in the project's alert Variable (:mod:`..alerts.state`).

    :param check: the project's :class:`~airflow_outamation.alerts.check.AlertCheck`
    """

    ui_color = "#f9d6d5"

    def __init__(self, *, check: AlertCheck, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check

    def execute(self, context: Context) -> dict[str, Any]:
        """Check and keep the state; return the open alerts' keys and the messages sent."""
        project_id = self.check.project_id
        state, sent, failures = self.check.run(load_state(project_id), datetime.now(timezone.utc))
        save_state(project_id, state)
        metrics.gauge(metrics.ALERTS_OPEN, len(state["open"]), dag_id_of(project_id))
        metrics.count(metrics.ALERTS_SENT, len(sent), dag_id_of(project_id))
        if failures:
            raise OutamationError("sending alerts failed: " + "; ".join(failures))
        return {"open": sorted(state["open"]), "sent": [message.subject for message in sent]}
