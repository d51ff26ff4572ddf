"""
A failed ingestion run's reason as its note, shown on the run's page in the UI.

Listener of the provider's plugin, called in the scheduler when a DAG run fails: for a run of the
example DAG it writes :func:`~airflow_outamation.ingestion_status.run_outcome` (each failed task and
the error it left as XCom ``failure``) as the run's note, unless someone wrote a note already.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.listeners import hookimpl
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from sqlalchemy import select
from sqlalchemy.orm import object_session

from airflow_outamation.ingestion_status import DAG_ID_PREFIX, FAILURE_KEY, run_outcome

if TYPE_CHECKING:
    from airflow.models.dagrun import DagRun

#: Longest note Airflow stores.
NOTE_LIMIT = 1000


@hookimpl
def on_dag_run_failed(dag_run: DagRun, msg: str) -> None:
    """Note why an ingestion run failed: its failed tasks and their errors, one line."""
    session = object_session(dag_run)
    if session is None or not dag_run.dag_id.startswith(DAG_ID_PREFIX) or dag_run.note:
        return
    states = dict(
        session.execute(
            select(TaskInstance.task_id, TaskInstance.state).where(
                TaskInstance.dag_id == dag_run.dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
    )
    failures = select(XComModel).where(
        XComModel.dag_id == dag_run.dag_id, XComModel.run_id == dag_run.run_id, XComModel.key == FAILURE_KEY
    )
    errors = {row.task_id: XComModel.deserialize_value(row) for row in session.scalars(failures)}
    if (outcome := run_outcome(states, errors)) is not None:
        dag_run.note = outcome if len(outcome) <= NOTE_LIMIT else outcome[: NOTE_LIMIT - 1] + "…"
