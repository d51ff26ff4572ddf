"""Failed sends, completion and retention at a distance: their round trips do not grow with the batches."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_outamation.exceptions import DocumentApiError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.document_api import ResendUnsentOperator, SubmitBatchesOperator
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.latency_proxy import LatencyProxy
from airflow_outamation.testing.server_base import SftpTestServer

DATE = "12052026"
FAR = "outamation_far"
#: Round trips a run may add for ten more batches (one by one, a batch's move cost about 25).
ALLOWED_GROWTH = 10


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def _send(server: SftpTestServer, base: str, conn_id: str, api: str, batches: int) -> None:
    """Claim ``2 x batches`` documents and have the API accept them all (completion ``keep``)."""
    paths = [f"{base}/input/doc{i:03}.pdf" for i in range(2 * batches)]
    for i, path in enumerate(paths):
        server.write(path, f"%PDF-1.7 document {i}".encode())
    claimed = PooledSFTPHook(conn_id).claim_files(paths, f"{base}/in_progress/{DATE}", "ingest__run1")
    SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=[file.to_dict() for file in claimed],
        uploaded_by="tester",
        source="SFTP",
        batch_size=2,
        document_api_conn_id=api,
        sftp_conn_id=conn_id,
    ).execute({})


def _round_trips(proxy: LatencyProxy, base: str, api: str, **kwargs: Any) -> int:
    """The SFTP round trips of one ``resend_unsent`` run through ``proxy`` (a new connection)."""
    PooledSFTPHook.close_all()
    before = proxy.round_trips
    ResendUnsentOperator(
        task_id="resend_unsent", sftp_conn_id=FAR, base_path=base, document_api_conn_id=api, **kwargs
    ).execute({})
    return proxy.round_trips - before


def test_completion_and_retention_of_many_batches_cost_the_round_trips_of_a_few(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trips: dict[str, dict[int, int]] = {"completion": {}, "retention": {}}
    with LatencyProxy(sftp_server.port, delay=0.01) as proxy:
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{FAR.upper()}", json.dumps({**sftp_server.connection_dict(), "port": proxy.port})
        )
        for batches in (2, 12):
            base = f"{sftp_base}/b{batches}"
            _send(sftp_server, base, sftp_conn_id, document_api_conn_id, batches)
            trips["completion"][batches] = _round_trips(
                proxy, base, document_api_conn_id, completion="move", retention_days=None
            )
            processed = sftp_server.local_path(f"{base}/processed/{DATE}")
            assert {p.name: p.read_bytes() for p in processed.iterdir() if p.suffix == ".pdf"} == {
                f"doc{i:03}.pdf": f"%PDF-1.7 document {i}".encode() for i in range(2 * batches)
            }
            assert not any(
                p.suffix == ".pdf" for p in sftp_server.local_path(f"{base}/in_progress/{DATE}").iterdir()
            )
            trips["retention"][batches] = _round_trips(
                proxy, base, document_api_conn_id, completion="move", retention_days=0
            )
            records = sftp_server.local_path(f"{base}/in_progress/{DATE}/.claims")
            assert sorted(p.name for p in records.rglob("*") if p.is_file()) == []

    for step, by_count in trips.items():
        assert by_count[12] - by_count[2] <= ALLOWED_GROWTH, (step, by_count)
    assert len(document_api_receiver.accepted_ids) == 14


def test_failed_sends_of_many_batches_cost_the_round_trips_of_a_few(
    sftp_server: SftpTestServer,
    sftp_base: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API down: each failed send is recorded (attempts), all of them in one pipelined step."""
    trips: dict[int, int] = {}
    with LatencyProxy(sftp_server.port, delay=0.01) as proxy:
        conn = {**sftp_server.connection_dict(), "port": proxy.port}
        monkeypatch.setenv(f"AIRFLOW_CONN_{FAR.upper()}", json.dumps(conn))
        for batches in (2, 12):
            base = f"{sftp_base}/b{batches}"
            paths = [f"{base}/input/doc{i:03}.pdf" for i in range(2 * batches)]
            for path in paths:
                sftp_server.write(path, b"%PDF-1.7")
            claimed = PooledSFTPHook(FAR).claim_files(paths, f"{base}/in_progress/{DATE}", "ingest__run1")
            document_api_receiver.script(*[503] * batches)
            PooledSFTPHook.close_all()
            before = proxy.round_trips
            with pytest.raises(DocumentApiError, match=f"{batches} batch\\(es\\) failed"):
                SubmitBatchesOperator(
                    task_id="submit_batches",
                    claimed=[file.to_dict() for file in claimed],
                    uploaded_by="tester",
                    source="SFTP",
                    batch_size=2,
                    document_api_conn_id=document_api_conn_id,
                    sftp_conn_id=FAR,
                    hook_kwargs={"max_retries": 0},
                ).execute({})
            trips[batches] = proxy.round_trips - before
            attempts = sftp_server.local_path(f"{base}/in_progress/{DATE}/.claims/attempts")
            assert len([p for p in attempts.iterdir() if p.name.endswith(".1.json")]) == batches

    assert trips[12] - trips[2] <= ALLOWED_GROWTH, trips
