"""The example DAG against an SFTP server reachable only through a jump host: sensor, claim and send."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from airflow_outamation.exceptions import SFTPConnectError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.jump_host import JumpHostRoute
from outamation_testbed.dag_runs import import_dag_file, xcom_values

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "outamation_sftp_ingest.py"

pytestmark = [pytest.mark.slow, pytest.mark.sshd]


@pytest.mark.usefixtures("airflow_db")
def test_a_run_through_a_jump_host_claims_and_sends_with_checksums(
    jump_host_route: JumpHostRoute,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = jump_host_route.target
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_JUMP", jump_host_route.jump_connection_json())
    monkeypatch.setenv(
        "AIRFLOW_CONN_OUTAMATION_BEHIND_JUMP",
        jump_host_route.target_connection_json(jump_host="outamation_jump"),
    )
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_DIRECT", jump_host_route.target_connection_json())
    base = target.remote_path(f"jump-{tmp_path.name}")
    contents = {f"doc{i}.pdf": b"%PDF-1.7 " + bytes([i]) * 100 for i in range(4)}
    for name, content in contents.items():
        target.write(f"{base}/input/{name}", content)
    with pytest.raises(SFTPConnectError):  # the target is not reachable directly
        PooledSFTPHook("outamation_direct").list_directory(f"{base}/input")
    document_api_receiver.local_file = target.local_path  # it checks every file's sha256
    project = {
        "project_id": "jumptest",
        "sftp_conn_id": "outamation_behind_jump",
        "document_api_conn_id": document_api_conn_id,
        "base_path": base,
        "profile_code": "intake",
        "poke_interval": 0.3,
        "checksum": "sha256",
    }
    (tmp_path / "projects.json").write_text(json.dumps([project]))
    monkeypatch.setenv("OUTAMATION_PROJECTS_FILE", str(tmp_path / "projects.json"))
    dag = import_dag_file(DAG_FILE).outamation_sftp_ingest_jumptest

    dag_run = dag.test(run_conf={"stability_delay": 0.3, "batch_size": 3})

    assert dag_run.state == "success"
    (claim,) = xcom_values(dag.dag_id, dag_run.run_id, "claim_files")
    assert (claim["file_count"], claim["files"]) == (4, sorted(contents))
    (summary,) = xcom_values(dag.dag_id, dag_run.run_id, "submit_batches")
    assert (summary["sent"], summary["failed"]) == (2, 0)
    sent = {f["filename"]: f["sha256"] for r in document_api_receiver.requests for f in r.json()["files"]}
    assert sent == {name: hashlib.sha256(content).hexdigest() for name, content in contents.items()}
    assert os.listdir(target.local_path(f"{base}/input")) == []
