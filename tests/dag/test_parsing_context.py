"""The example DAG file builds only the DAG a task process runs, and every DAG anywhere else."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType

import pytest
from airflow.sdk import DAG
from airflow.sdk.definitions._internal.dag_parsing_context import _airflow_parsing_context_manager

from outamation_testbed.dag_runs import import_dag_file

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "outamation_sftp_ingest.py"
PROJECTS = 500


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


def test_a_task_process_builds_only_its_own_dag(projects_file: Path) -> None:
    # How Airflow's task runner parses the file for a task instance (task_runner.startup).
    with _airflow_parsing_context_manager(dag_id="outamation_sftp_ingest_p123", task_id="claim_files"):
        module = import_dag_file(DAG_FILE)

    assert _dags_of(module) == ["outamation_sftp_ingest_p123"]
    assert module.outamation_sftp_ingest_p123.params["base_path"] == "/customers/p123"


def test_a_placeholders_task_builds_only_its_placeholder(projects_file: Path) -> None:
    with _airflow_parsing_context_manager(
        dag_id="outamation_sftp_ingest-invalid-500-typo", task_id="invalid_entry"
    ):
        module = import_dag_file(DAG_FILE)

    assert _dags_of(module) == ["outamation_sftp_ingest-invalid-500-typo"]
