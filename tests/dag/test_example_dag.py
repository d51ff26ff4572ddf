"""The example DAG: it imports cleanly, its params validate, and a full run works on the real servers."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType

import pytest

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.sftp import manifest_id_for
from airflow_outamation.testing.dag_runs import import_dag_file, xcom_values
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer

REPO = Path(__file__).resolve().parents[2]
DAG_FILE = REPO / "dags" / "outamation_sftp_ingest.py"


def _load_example_dag(
    projects: list[dict[str, object]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    projects_file = tmp_path / "projects.json"
    projects_file.write_text(json.dumps(projects))
    monkeypatch.setenv("OUTAMATION_PROJECTS_FILE", str(projects_file))
    return import_dag_file(DAG_FILE)


def test_dags_folder_has_no_import_errors() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags["outamation_sftp_ingest_example"]
    assert dag.task_ids == ["wait_for_files", "claim_files", "make_batches", "submit_batch"]
    assert dag.max_active_runs == 1
    assert dag.catchup is False


def test_one_dag_per_project_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    projects = [
        {"project_id": p, "sftp_conn_id": f"sftp_{p}", "document_api_conn_id": "api", "base_path": f"/{p}"}
        for p in ("alpha", "beta")
    ]
    module = _load_example_dag(projects, tmp_path, monkeypatch)
    assert module.outamation_sftp_ingest_alpha.params["base_path"] == "/alpha"
    assert module.outamation_sftp_ingest_beta.params["base_path"] == "/beta"


def test_params_reject_bad_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    project = {"project_id": "p", "sftp_conn_id": "s", "document_api_conn_id": "a", "base_path": "/p"}
    dag = _load_example_dag([project], tmp_path, monkeypatch).outamation_sftp_ingest_p
    for name, bad in (("batch_size", 0), ("batch_size", "five"), ("base_path", ""), ("stability_delay", -1)):
        with pytest.raises(ParamValidationError):
            dag.params.get_param(name).resolve(bad)
    assert dag.params.get_param("batch_size").resolve(7) == 7


@pytest.mark.slow
def test_full_run_claims_batches_and_sends_signed_calls(
    airflow_db: str,
    asyncssh_server: SftpTestServer,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    base = asyncssh_server.remote_path(f"example-{tmp_path.name}")
    for i in range(7):
        asyncssh_server.write(f"{base}/input/doc{i}.pdf", b"%PDF-1.7 " + bytes([i]) * 100)
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_EXAMPLE_SFTP", asyncssh_server.connection_json())
    project = {
        "project_id": "dagtest",
        "sftp_conn_id": "outamation_example_sftp",
        "document_api_conn_id": document_api_conn_id,
        "base_path": base,
        "profile_code": "intake",
        "poke_interval": 0.3,
    }
    dag = _load_example_dag([project], tmp_path, monkeypatch).outamation_sftp_ingest_dagtest
    with asyncssh_server.growing_file(f"{base}/input/growing.pdf"):
        dag_run = dag.test(run_conf={"stability_delay": 0.4, "batch_size": 3, "uploaded_by": "tester"})

    assert dag_run.state == "success"
    (claimed,) = xcom_values(dag.dag_id, dag_run.run_id, "claim_files")
    assert sorted(c["filename"] for c in claimed) == [f"doc{i}.pdf" for i in range(7)]
    folder = os.path.dirname(claimed[0]["backup_path"])
    assert folder.startswith(f"{base}/in_progress/")
    assert os.listdir(asyncssh_server.local_path(f"{base}/input")) == ["growing.pdf"]  # still being written
    requests = document_api_receiver.requests
    assert len(requests) == 3
    assert all(r.valid for r in requests)
    payloads = [r.json() for r in requests]
    assert sorted(len(p["files"]) for p in payloads) == [1, 3, 3]
    assert {(p["uploaded_by"], p["source"], p["profile_code"]) for p in payloads} == {
        ("tester", "SFTP", "intake")
    }
    sent = sorted(f["backup_path"] for p in payloads for f in p["files"])
    assert sent == sorted(c["backup_path"] for c in claimed)
    status = PooledSFTPHook(ssh_conn_id="outamation_example_sftp").claim_status(
        folder, manifest_id_for(dag.dag_id, dag_run.run_id)
    )
    assert status == {"sent": sorted(sent), "unsent": []}
