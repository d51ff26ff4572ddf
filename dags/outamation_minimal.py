"""
A minimal Outamation pipeline for one project: a starting point for your own DAG.

Every 5 minutes: wait in the triggerer for PDFs that finished uploading to ``/upload/acme/input``,
move them into ``/upload/acme/in_progress/<MMDDYYYY>/`` and post them, 5 per signed call, to the
document API. Needs two Airflow connections: ``outamation_sftp_acme`` (type ``sftp``) and
``outamation_document_api`` (type ``outamation_document_api``, with the profile code in its extras).
For many projects, resends, completion and the status page: ``outamation_sftp_ingest.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow_outamation.operators.document_api import SubmitBatchesOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator
from airflow_outamation.sensors.sftp import ReadyFilesSensor

BASE_PATH = "/upload/acme"
SFTP_CONN_ID = "outamation_sftp_acme"

with DAG(
    "outamation_minimal",
    schedule="*/5 * * * *",
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    max_active_runs=1,
    tags=["outamation"],
) as dag:
    ready = ReadyFilesSensor(
        task_id="wait_for_files",
        sftp_conn_id=SFTP_CONN_ID,
        directory=f"{BASE_PATH}/input",
        deferrable=True,
        poke_interval=30,
        timeout=timedelta(minutes=4).total_seconds(),
        soft_fail=True,  # nothing arrived: the run is skipped, the next one looks again
    )
    claimed = ClaimFilesOperator(
        task_id="claim_files", sftp_conn_id=SFTP_CONN_ID, base_path=BASE_PATH, files=ready.output
    )
    SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=claimed.output,
        uploaded_by="airflow",
        source="SFTP",
        sftp_conn_id=SFTP_CONN_ID,
        document_api_conn_id="outamation_document_api",
    )
