"""Claim, batch and submit inside real DAG runs (``dag.test()``) on the asyncssh server."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.sftp import manifest_id_for
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.dag_runs import load_dag_in_bundle, xcom_values

DAG_ID = "outamation_test_claim_batch"
DAG_SOURCE = """
from datetime import datetime, timezone

from airflow.sdk import DAG, task

from airflow_outamation.operators.batch import BatchFilesOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    claim = ClaimFilesOperator(
        task_id="claim", sftp_conn_id="{conn_id}", base_path="{base}", stability_delay=0.2
    )
    batches = BatchFilesOperator(task_id="batch", claimed=claim.output)

    @task
    def submit(batch):
        return len(batch)

    submit.expand(batch=batches.output)
"""


@pytest.mark.slow
def test_claim_then_batch_in_a_dag_run(
    airflow_db: str,
    asyncssh_server: SftpTestServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    base = asyncssh_server.remote_path(f"dag-{tmp_path.name}")
    for i in range(12):
        asyncssh_server.write(f"{base}/input/doc{i:02}.pdf", b"%PDF-1.7")
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_DAG_CLAIM", asyncssh_server.connection_json())
    module = load_dag_in_bundle(
        DAG_SOURCE.format(dag_id=DAG_ID, conn_id="outamation_dag_claim", base=base),
        tmp_path / "bundle",
        monkeypatch,
    )
    logical_date = datetime(2026, 1, 15, 23, 59, 59, tzinfo=timezone.utc)

    dag_run = module.dag.test(logical_date=logical_date)

    assert dag_run.state == "success"
    folder = f"{base}/in_progress/01152026"  # the run's date, not today's
    (claimed,) = xcom_values(DAG_ID, dag_run.run_id, "claim")
    assert [c["backup_path"] for c in claimed] == [f"{folder}/doc{i:02}.pdf" for i in range(12)]
    assert sorted(os.listdir(asyncssh_server.local_path(folder))) == [
        ".claims",
        *(f"doc{i:02}.pdf" for i in range(12)),
    ]
    (batches,) = xcom_values(DAG_ID, dag_run.run_id, "batch")
    assert [len(b) for b in batches] == [5, 5, 2]
    assert sorted(xcom_values(DAG_ID, dag_run.run_id, "submit")) == [2, 5, 5]

    empty_run = module.dag.test(logical_date=datetime(2026, 1, 16, tzinfo=timezone.utc))

    assert empty_run.state == "success"
    states = {ti.task_id: ti.state for ti in empty_run.get_task_instances()}
    assert states == {"claim": "success", "batch": "success", "submit": "skipped"}


SUBMIT_DAG_SOURCE = """
from datetime import datetime, timezone

from airflow.sdk import DAG

from airflow_outamation.operators.batch import BatchFilesOperator
from airflow_outamation.operators.document_api import SubmitBatchOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)) as dag:
    claim = ClaimFilesOperator(
        task_id="claim", sftp_conn_id="{conn_id}", base_path="{base}", stability_delay=0.2
    )
    batches = BatchFilesOperator(task_id="batch", claimed=claim.output)
    SubmitBatchOperator.partial(
        task_id="submit",
        document_api_conn_id="{api_conn_id}",
        sftp_conn_id="{conn_id}",
        uploaded_by="tester",
        source="SFTP",
    ).expand(batch=batches.output)
"""


@pytest.mark.slow
def test_a_batch_the_api_refuses_stays_unsent_in_in_progress(
    airflow_db: str,
    asyncssh_server: SftpTestServer,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    dag_id = "outamation_test_refused_batch"
    base = asyncssh_server.remote_path(f"refused-{tmp_path.name}")
    for i in range(12):
        asyncssh_server.write(f"{base}/input/doc{i:02}.pdf", b"%PDF-1.7")
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_DAG_REFUSED", asyncssh_server.connection_json())
    source = SUBMIT_DAG_SOURCE.format(
        dag_id=dag_id, conn_id="outamation_dag_refused", base=base, api_conn_id=document_api_conn_id
    )
    module = load_dag_in_bundle(source, tmp_path / "bundle", monkeypatch)
    document_api_receiver.script(400)  # the first batch to arrive is refused for good

    dag_run = module.dag.test(logical_date=datetime(2026, 1, 15, tzinfo=timezone.utc))

    assert dag_run.state == "failed"
    submits = {ti.map_index: ti.state for ti in dag_run.get_task_instances() if ti.task_id == "submit"}
    assert sorted(submits.values()) == ["failed", "success", "success"]
    (refused,) = [r for r in document_api_receiver.requests if r.reply.status == 400]
    refused_paths = [f["backup_path"] for f in refused.json()["files"]]
    (batches,) = xcom_values(dag_id, dag_run.run_id, "batch")
    failed_index = next(index for index, state in submits.items() if state == "failed")
    assert refused_paths == [f["backup_path"] for f in batches[failed_index]]

    folder = f"{base}/in_progress/01152026"
    status = PooledSFTPHook(ssh_conn_id="outamation_dag_refused").claim_status(
        folder, manifest_id_for(dag_id, dag_run.run_id)
    )
    assert status["unsent"] == refused_paths
    assert sorted(status["sent"] + status["unsent"]) == [f"{folder}/doc{i:02}.pdf" for i in range(12)]
    assert all(os.path.isfile(asyncssh_server.local_path(path)) for path in refused_paths)
