"""SubmitBatchOperator mapped over three batches inside a real DAG run (``dag.test()``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_outamation.signing import message_id
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, Reply
from outamation_testbed.dag_runs import load_dag_in_bundle, xcom_values

DAG_ID = "outamation_test_submit_batches"

DAG_SOURCE = """
from datetime import datetime, timezone

from airflow.sdk import DAG, task

from airflow_outamation.operators.document_api import SubmitBatchOperator

BATCH_SIZES = (5, 5, 2)


def three_batches():
    return [
        [
            {{
                "filename": f"doc{{b}}{{i}}.pdf",
                "source_path": f"/drop/input/doc{{b}}{{i}}.pdf",
                "backup_path": f"/drop/in_progress/01012026/doc{{b}}{{i}}.pdf",
                "size": 100 + i,
            }}
            for i in range(size)
        ]
        for b, size in enumerate(BATCH_SIZES)
    ]


with DAG(
    "{dag_id}", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False
) as dag:

    @task
    def make_batches():
        return three_batches()

    SubmitBatchOperator.partial(
        task_id="submit_batch",
        document_api_conn_id="{conn_id}",
        uploaded_by="{{{{ dag.dag_id }}}}",
        source="SFTP",
        profile_code="intake",
    ).expand(batch=make_batches())
"""


@pytest.mark.slow
def test_mapped_submit_sends_three_signed_batches(
    airflow_db: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = load_dag_in_bundle(
        DAG_SOURCE.format(dag_id=DAG_ID, conn_id=document_api_conn_id), tmp_path / "bundle", monkeypatch
    )
    document_api_receiver.script(503)  # one batch needs a retry inside its task

    dag_run = module.dag.test()

    assert dag_run.state == "success"
    submitted = [ti for ti in dag_run.get_task_instances() if ti.task_id == "submit_batch"]
    assert sorted(ti.map_index for ti in submitted) == [0, 1, 2]
    assert {ti.state for ti in submitted} == {"success"}
    # Each mapped task is named after its batch in the UI (the default map_index_template).
    assert sorted(ti.rendered_map_index for ti in submitted) == [
        "batch 1: doc00.pdf … doc04.pdf (5)",
        "batch 2: doc10.pdf … doc14.pdf (5)",
        "batch 3: doc20.pdf … doc21.pdf (2)",
    ]
    requests = document_api_receiver.requests
    assert all(r.valid for r in requests), [r.signature_error for r in requests]
    accepted = [r for r in requests if r.reply == Reply()]
    assert len(requests) == 4
    assert len(accepted) == 3
    payloads = sorted((r.json() for r in accepted), key=lambda p: p["files"][0]["filename"])
    batches = module.three_batches()
    expected = [
        {
            "files": [{"filename": f["filename"], "backup_path": f["backup_path"]} for f in batch],
            "uploaded_by": DAG_ID,
            "source": "SFTP",
            "profile_code": "intake",
        }
        for batch in batches
    ]
    assert payloads == expected
    assert {r.message_id for r in requests} == {
        message_id(p, b) for p, b in zip(expected, batches, strict=True)
    }
    summaries = sorted(xcom_values(DAG_ID, dag_run.run_id, "submit_batch"), key=lambda s: s["file_count"])
    assert [(s["status"], s["file_count"]) for s in summaries] == [(200, 2), (200, 5), (200, 5)]
    assert {s["message_id"] for s in summaries} == {r.message_id for r in accepted}
