"""The example DAG with a file whose name is not UTF-8: sensor XCom, claim, payload and records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.dag_runs import import_dag_file, xcom_values

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "outamation_sftp_ingest.py"


@pytest.mark.slow
def test_a_name_that_is_not_utf8_goes_through_a_full_run(
    airflow_db: str,
    asyncssh_server: SftpTestServer,
    document_api_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    base = asyncssh_server.remote_path(f"names-{tmp_path.name}")
    asyncssh_server.write(f"{base}/input/plain.pdf")
    with open(
        os.path.join(os.fsencode(asyncssh_server.local_path(f"{base}/input")), b"M\xfcller.pdf"), "wb"
    ) as f:
        f.write(b"%PDF-1.7 latin-1")
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_EXAMPLE_SFTP", asyncssh_server.connection_json())
    project = {
        "project_id": "names",
        "sftp_conn_id": "outamation_example_sftp",
        "document_api_conn_id": document_api_conn_id,
        "base_path": base,
        "profile_code": "intake",
        "poke_interval": 0.3,
    }
    projects_file = tmp_path / "projects.json"
    projects_file.write_text(json.dumps([project]))
    monkeypatch.setenv("OUTAMATION_PROJECTS_FILE", str(projects_file))
    dag = import_dag_file(DAG_FILE).outamation_sftp_ingest_names

    dag_run = dag.test(run_conf={"stability_delay": 0.3})

    assert dag_run.state == "success"
    (ready,) = xcom_values(dag.dag_id, dag_run.run_id, "wait_for_files")
    assert sorted(file["filename"] for file in ready["files"]) == ["M\\xfcller.pdf", "plain.pdf"]
    sent = sorted(f["filename"] for r in document_api_receiver.requests for f in r.json()["files"])
    assert sent == ["Müller.pdf", "plain.pdf"]
    assert os.listdir(asyncssh_server.local_path(f"{base}/input")) == []
    (folder,) = os.listdir(asyncssh_server.local_path(f"{base}/in_progress"))
    claimed = os.listdir(asyncssh_server.local_path(f"{base}/in_progress/{folder}"))
    assert sorted(claimed) == [".claims", "Müller.pdf", "plain.pdf"]
