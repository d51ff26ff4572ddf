"""The minimal example DAG (``dags/outamation_minimal.py``) runs as written, on a real server and API."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.dag_runs import import_dag_file, xcom_values

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "outamation_minimal.py"


@pytest.mark.slow
def test_the_minimal_dag_claims_and_sends_every_ready_file(
    airflow_db: str,
    asyncssh_server: SftpTestServer,
    document_api_receiver: DocumentApiReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = import_dag_file(DAG_FILE)
    shutil.rmtree(asyncssh_server.local_path(module.BASE_PATH), ignore_errors=True)
    names = [f"scan_{number}.pdf" for number in range(7)]
    for name in names:
        asyncssh_server.write(f"{module.BASE_PATH}/input/{name}", b"%PDF-1.7 " + name.encode())
    monkeypatch.setenv(f"AIRFLOW_CONN_{module.SFTP_CONN_ID.upper()}", asyncssh_server.connection_json())
    api_connection = document_api_receiver.connection_json(profile_code="acme")
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_DOCUMENT_API", api_connection)

    dag_run = module.dag.test()

    assert dag_run.state == "success"
    (claimed,) = xcom_values(module.dag.dag_id, dag_run.run_id, "claim_files")
    assert sorted(file["filename"] for file in claimed) == names
    assert os.listdir(asyncssh_server.local_path(f"{module.BASE_PATH}/input")) == []
    sent = [
        file["filename"] for request in document_api_receiver.requests for file in request.json()["files"]
    ]
    assert sorted(sent) == names
    assert len(document_api_receiver.requests) == 2  # batches of 5
    assert all(request.valid for request in document_api_receiver.requests)
