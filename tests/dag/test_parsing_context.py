"""The example DAG file builds only the DAG a task process runs, and every DAG anywhere else."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from airflow.sdk import DAG
from airflow.sdk.definitions.context import _AIRFLOW_PARSING_CONTEXT_DAG_ID, _AIRFLOW_PARSING_CONTEXT_TASK_ID

from outamation_testbed.dag_runs import import_dag_file

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "outamation_sftp_ingest.py"
PROJECTS = 500


def _parse_for_task(monkeypatch: pytest.MonkeyPatch, dag_id: str, task_id: str) -> ModuleType:
    """Import the DAG file as Airflow's task runner does for a task instance (its parsing context set).

    Set through ``monkeypatch``: Airflow's own ``_airflow_parsing_context_manager`` leaves the variables
    in ``os.environ`` when they were not set before, and later tests' Airflow processes inherited them
    (their DAG processor then built no project's DAG).
    """
    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_DAG_ID, dag_id)
    monkeypatch.setenv(_AIRFLOW_PARSING_CONTEXT_TASK_ID, task_id)
    return import_dag_file(DAG_FILE)


def _dags_of(module: ModuleType) -> list[str]:
    return sorted({value.dag_id for value in vars(module).values() if isinstance(value, DAG)})


@pytest.fixture
def projects_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """500 valid entries and two invalid ones (placeholders)."""
    entries: list[dict[str, object]] = [
        {
            "project_id": f"p{index:03d}",
            "sftp_conn_id": f"sftp_p{index:03d}",
            "document_api_conn_id": "api",
            "base_path": f"/customers/p{index:03d}",
            "profile_code": "intake",
        }
        for index in range(PROJECTS)
    ]
    entries.append({"project_id": "typo", "sftp_conn_id": "s", "document_api_conn_id": "a", "base_pth": "/x"})
    entries.append({"project_id": "late", "sftp_conn_id": "s", "document_api_conn_id": "a"})
    path = tmp_path / "projects.json"
    path.write_text(json.dumps(entries))
    monkeypatch.setenv("OUTAMATION_PROJECTS_FILE", str(path))
    monkeypatch.setenv("PROFILE_CODE", "")
    return path


def test_a_plain_import_builds_every_dag(projects_file: Path) -> None:
    dags = _dags_of(import_dag_file(DAG_FILE))

    assert len(dags) == PROJECTS + 2
    assert "outamation_sftp_ingest_p499" in dags
    assert "outamation_sftp_ingest-invalid-500-typo" in dags


def test_a_task_process_builds_only_its_own_dag(projects_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = _parse_for_task(monkeypatch, "outamation_sftp_ingest_p123", "claim_files")

    assert _dags_of(module) == ["outamation_sftp_ingest_p123"]
    assert module.outamation_sftp_ingest_p123.params["base_path"] == "/customers/p123"


def test_a_placeholders_task_builds_only_its_placeholder(
    projects_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = _parse_for_task(monkeypatch, "outamation_sftp_ingest-invalid-500-typo", "invalid_entry")

    assert _dags_of(module) == ["outamation_sftp_ingest-invalid-500-typo"]
