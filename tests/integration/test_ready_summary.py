"""The sensor's XCom and its trigger's event are bounded summaries; the claim finds their files again."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, cast

import pytest
from airflow.sdk import Context

from airflow_outamation.assets import EVENT_FILES_LISTED
from airflow_outamation.operators.sftp import ClaimFilesOperator
from airflow_outamation.sensors.sftp import ReadyFilesSensor
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.triggers.sftp import ReadyFilesTrigger
from tests.integration.test_ready_files_sensor import trigger_event

#: The bound this test holds the sensor's XCom and the trigger's event to, whatever the file count.
XCOM_BOUND = EVENT_FILES_LISTED * 160 + 1024
CONTEXT = cast(Context, {})


def _write(server: SftpTestServer, directory: str, count: int) -> list[str]:
    names = [f"document_{i:05d}.pdf" for i in range(count)]
    for name in names:
        server.write(f"{directory}/{name}", b"%PDF-1.7")
    return names


def _sensor(conn_id: str, directory: str, **kwargs: Any) -> ReadyFilesSensor:
    return ReadyFilesSensor(
        task_id="wait", sftp_conn_id=conn_id, directory=directory, stability_delay=0.3, timeout=60, **kwargs
    )


def _claim(conn_id: str, base: str, files: Any) -> Any:
    context = {
        "logical_date": datetime(2026, 11, 26, tzinfo=timezone.utc),
        "run_id": f"manual__{os.urandom(4).hex()}",
        "dag_run": SimpleNamespace(dag_id="ingest"),
    }
    claim = ClaimFilesOperator(
        task_id="claim_files", sftp_conn_id=conn_id, base_path=base, files=files, return_summary=True
    )
    return claim.execute(cast(Context, context))


def test_the_sensors_xcom_and_the_trigger_event_are_bounded_whatever_the_file_count(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    if sftp_server.kind == "rclone":
        pytest.skip("the bound is the XCom's, whatever the server; 2,000 files on rclone are slow to list")
    _write(sftp_server, f"{sftp_base}/small", 200)
    names = _write(sftp_server, f"{sftp_base}/large", 2000)

    small = _sensor(sftp_conn_id, f"{sftp_base}/small").execute(CONTEXT)
    large = _sensor(sftp_conn_id, f"{sftp_base}/large").execute(CONTEXT)
    event = trigger_event(ReadyFilesTrigger(sftp_conn_id, f"{sftp_base}/large", stability_delay=0.3))

    for value in (large, event):
        assert len(json.dumps(value)) <= XCOM_BOUND
        assert value["file_count"] == 2000
        assert [f["filename"] for f in value["files"]] == names[:EVENT_FILES_LISTED]
    assert len(json.dumps(large)) - len(json.dumps(small)) <= 10  # only the directory's and counts' digits
    assert event["digest"] == large["digest"]


def test_a_claim_finds_a_summarys_files_again_in_one_listing(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    names = _write(sftp_server, f"{sftp_base}/input", 2 * EVENT_FILES_LISTED + 5)
    ready = _sensor(sftp_conn_id, f"{sftp_base}/input", max_files=2 * EVENT_FILES_LISTED).execute(CONTEXT)
    sftp_server.write(f"{sftp_base}/input/zz_after.pdf", b"%PDF-1.7")  # after the sensor looked: next run

    claimed = _claim(sftp_conn_id, sftp_base, ready)

    assert claimed["file_count"] == 2 * EVENT_FILES_LISTED
    assert claimed["files"] == names[:EVENT_FILES_LISTED]
    left = sorted(os.listdir(sftp_server.local_path(f"{sftp_base}/input")))
    assert left == [*names[2 * EVENT_FILES_LISTED :], "zz_after.pdf"]


def test_a_claim_looks_again_when_the_folder_changed_since_the_sensor(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    names = _write(sftp_server, f"{sftp_base}/input", EVENT_FILES_LISTED + 5)
    ready = _sensor(sftp_conn_id, f"{sftp_base}/input").execute(CONTEXT)
    sftp_server.write(f"{sftp_base}/input/{names[-1]}", b"%PDF-1.7, rewritten")  # changed since

    with sftp_server.growing_file(f"{sftp_base}/input/a_growing.pdf"):
        claimed = _claim(sftp_conn_id, sftp_base, ready)

    assert claimed["file_count"] == EVENT_FILES_LISTED + 5  # the rewritten one is ready again by now
    assert os.listdir(sftp_server.local_path(f"{sftp_base}/input")) == ["a_growing.pdf"]


def test_an_event_of_the_older_shape_still_resumes_the_sensor() -> None:
    files = [{"path": f"/in/{name}.pdf", "filename": f"{name}.pdf", "size": 6, "mtime": 1.0} for name in "ab"]
    sensor = _sensor("unused", "/in")  # an event, not a server: the sensor reads none here

    summary = sensor.execute_complete(CONTEXT, {"status": "success", "files": files, "message": "2 ready"})

    assert summary["file_count"] == 2
    assert summary["files"] == files
