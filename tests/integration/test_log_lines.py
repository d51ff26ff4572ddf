"""What a person reading the task logs sees: file names (bounded), one line per batch, a wait's progress."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.hooks.ssh_logging import SSH_LOGGERS
from airflow_outamation.operators.document_api import SubmitBatchesOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator
from airflow_outamation.sensors.sftp import ReadyFilesSensor
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.event_loops import run
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.triggers.sftp import ReadyFilesTrigger


@pytest.fixture(autouse=True)
def _fresh_pools_and_ssh_log_levels() -> Iterator[None]:
    """Every test opens its own connections (their log is what is looked at) and keeps the levels it found."""
    levels = {name: logging.getLogger(name).level for name in SSH_LOGGERS}
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    """Standard logging records plus what Airflow's structlog loggers printed."""
    captured = capfd.readouterr()
    return caplog.text + captured.out + captured.err


def _context(dag_id: str = "ingest") -> Any:
    return {
        "logical_date": datetime(2026, 11, 26, tzinfo=timezone.utc),
        "run_id": f"manual__{os.urandom(4).hex()}",
        "dag_run": SimpleNamespace(dag_id=dag_id),
    }


def _claim(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, count: int
) -> list[dict[str, Any]]:
    for i in range(count):
        sftp_server.write(f"{sftp_base}/input/invoice_{i:03d}.pdf", b"%PDF-1.7 " + bytes([i]))
    operator = ClaimFilesOperator(
        task_id="claim_files", sftp_conn_id=sftp_conn_id, base_path=sftp_base, stability_delay=0.3
    )
    return operator.execute(_context())


def test_claim_log_names_each_file_up_to_ten(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 3)

    logs = _logs(caplog, capfd)
    assert len(claimed) == 3
    assert "Claimed 3 of 3 file(s)" in logs
    assert "invoice_000.pdf, invoice_001.pdf, invoice_002.pdf" in logs


def test_claim_log_of_many_files_names_ten_and_counts_the_rest(
    asyncssh_server: SftpTestServer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    from airflow_outamation.testing.pytest_plugin import set_airflow_connection

    conn_id = set_airflow_connection(monkeypatch, "outamation_log_lines", asyncssh_server)
    base = asyncssh_server.remote_path(f"log-lines-{tmp_path.name}")
    caplog.set_level(logging.INFO)
    _claim(asyncssh_server, base, conn_id, 13)

    logs = _logs(caplog, capfd)
    names = ", ".join(f"invoice_{i:03d}.pdf" for i in range(10))
    assert f"Claimed 13 of 13 file(s) from {base}/input" in logs
    assert f"{names} … and 3 more" in logs
    assert "invoice_010.pdf" not in logs


def test_submit_log_has_one_line_per_batch_with_its_files(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    claimed = _claim(sftp_server, sftp_base, sftp_conn_id, 12)
    caplog.set_level(logging.INFO)
    capfd.readouterr()

    SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=claimed,
        uploaded_by="tester",
        source="SFTP",
        document_api_conn_id=document_api_conn_id,
        sftp_conn_id=sftp_conn_id,
    ).execute(_context())

    logs = _logs(caplog, capfd)
    assert len(document_api_receiver.accepted_ids) == 3
    second = ", ".join(f"invoice_{i:03d}.pdf" for i in range(5, 10))
    assert "batch 1/3: invoice_000.pdf … invoice_004.pdf (5 files): invoice_000.pdf, " in logs
    assert f"batch 2/3: invoice_005.pdf … invoice_009.pdf (5 files): {second}; sending" in logs
    assert "batch 3/3: invoice_010.pdf … invoice_011.pdf (2 files): invoice_010.pdf, invoice_011.pdf" in logs


def test_trigger_says_what_it_watches_and_logs_progress_only_when_it_changes(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    trigger = ReadyFilesTrigger(sftp_conn_id, sftp_base, poke_interval=0.2, stability_delay=0.4)

    async def wait_while_growing() -> dict[str, Any]:
        events = trigger.run()
        try:
            with sftp_server.growing_file(f"{sftp_base}/x.pdf"):
                first = asyncio.ensure_future(events.__anext__())
                await asyncio.sleep(2.0)
                assert not first.done()  # still growing: no event
            return (await asyncio.wait_for(first, 30)).payload
        finally:
            await events.aclose()

    event = run(wait_while_growing())

    logs = _logs(caplog, capfd)
    assert event["status"] == "success"
    assert logs.count(f"Waiting for *.pdf in {sftp_base} every 0.2 s (a file is ready once unchanged") == 1
    growing = f"Waiting for *.pdf in {sftp_base} every 0.2 s: 0 ready, 1 still growing (x.pdf)"
    assert logs.count(growing) == 1  # about ten polls saw it growing; the line is written once
    assert "1 ready file(s)" in logs


def test_poking_sensor_says_what_it_watches_and_repeats_no_progress_line(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from airflow.sdk.exceptions import AirflowSensorTimeout

    caplog.set_level(logging.INFO)
    sensor = ReadyFilesSensor(
        task_id="wait_for_files",
        sftp_conn_id=sftp_conn_id,
        directory=sftp_base,
        deferrable=False,
        stability_delay=0.3,
        poke_interval=0.2,
        timeout=2,
    )

    with pytest.raises(AirflowSensorTimeout):
        sensor.execute(_context())

    logs = _logs(caplog, capfd)
    assert logs.count(f"Watching {sftp_base} for *.pdf every 0.2 s for up to 2 s") == 1
    assert logs.count(f"Waiting for *.pdf in {sftp_base} every 0.2 s: 0 ready") == 1  # several pokes


def test_ssh_libraries_log_warnings_only_by_default(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    for name in SSH_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)  # as a fresh worker has them
    caplog.set_level(logging.INFO)

    PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_directory(sftp_base)

    libraries = [r for r in caplog.records if r.name.split(".")[0] in SSH_LOGGERS]
    assert [r.getMessage() for r in libraries if r.levelno < logging.WARNING] == []
    assert [logging.getLogger(name).level for name in SSH_LOGGERS] == [logging.WARNING] * 2


def test_ssh_log_level_option_brings_the_chatter_back(
    asyncssh_server: SftpTestServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow_outamation.testing.pytest_plugin import set_airflow_connection

    conn_id = set_airflow_connection(monkeypatch, "outamation_ssh_debug", asyncssh_server)
    monkeypatch.setenv("AIRFLOW__OUTAMATION__SSH_LOG_LEVEL", "debug")
    caplog.set_level(logging.DEBUG)

    PooledSFTPHook(ssh_conn_id=conn_id).list_directory(asyncssh_server.remote_path(""))

    assert logging.getLogger("asyncssh").level == logging.DEBUG
    assert [r for r in caplog.records if r.name.startswith("asyncssh") and r.levelno == logging.INFO]
