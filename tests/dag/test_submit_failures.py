"""SubmitBatchesOperator fails without Airflow retries only when every failed batch was refused (4xx)."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_outamation.exceptions import DocumentApiError, DocumentApiRejectedError
from airflow_outamation.operators.document_api import SubmitBatchesOperator
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver


def _claimed(*names: str) -> list[dict[str, Any]]:
    return [
        {
            "filename": name,
            "source_path": f"/drop/input/{name}",
            "backup_path": f"/drop/in_progress/11262026/{name}",
            "size": 10,
        }
        for name in names
    ]


def _submit(conn_id: str, *names: str) -> None:
    operator = SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=_claimed(*names),
        uploaded_by="Airflow",
        source="SFTP",
        profile_code="intake",
        batch_size=1,
        document_api_conn_id=conn_id,
    )
    operator.execute({})  # type: ignore[arg-type]


def test_every_batch_refused_fails_without_retries(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    document_api_receiver.script_for_file("a.pdf", 400)
    document_api_receiver.script_for_file("b.pdf", 422)
    with pytest.raises(DocumentApiRejectedError, match="2 batch"):
        _submit(document_api_conn_id, "a.pdf", "b.pdf", "c.pdf")


def test_a_refused_and_an_unreachable_batch_fail_with_retries(
    document_api_receiver: DocumentApiReceiver, document_api_conn_id: str
) -> None:
    document_api_receiver.script_for_file("a.pdf", 400)
    document_api_receiver.script_for_file("b.pdf", 503, 503, 503, 503)  # max_retries=3: gives up
    with pytest.raises(DocumentApiError, match="2 batch") as raised:
        _submit(document_api_conn_id, "a.pdf", "b.pdf")
    assert not isinstance(raised.value, AirflowFailException)
