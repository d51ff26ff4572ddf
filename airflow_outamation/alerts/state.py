"""
A project's alert state: the open alerts, since when its SFTP server fails, the chart's daily counts,
and the run of the last check (whose failed tasks' errors the next check may quote).

Kept in one Airflow Variable per project (``outamation_alerts__<project_id>``), JSON: the metadata
database is what every run, every retry and the status page see, and it stays readable while the
project's SFTP server is down, exactly when the ``unreachable`` condition needs to remember since
when it is down. One ``check_alerts`` at a time per project writes it (``max_active_tis_per_dag=1``,
also when its runs overlap).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Variable

#: Every project's alert Variable is this prefix and its ``project_id``.
VARIABLE_PREFIX = "outamation_alerts__"


def variable_key(project_id: str) -> str:
    """The Variable holding ``project_id``'s alert state."""
    return f"{VARIABLE_PREFIX}{project_id}"


def empty_state() -> dict[str, Any]:
    """The state of a project never checked: no open alert, no failing server, no history."""
    return {"open": {}, "failing_since": None, "days": {}, "checked_at": None, "run_id": None}


def load_state(project_id: str) -> dict[str, Any]:
    """The project's state as the last check left it (from a task)."""
    state = Variable.get(variable_key(project_id), default=None, deserialize_json=True)
    return {**empty_state(), **state} if isinstance(state, dict) else empty_state()


def save_state(project_id: str, state: dict[str, Any]) -> None:
    """Keep the project's state for the next check (from a task)."""
    Variable.set(
        variable_key(project_id),
        state,
        description=f"Open alerts of project {project_id} (written by its check_alerts task)",
        serialize_json=True,
    )
