"""A connection that cannot describe an SFTP server fails at once, naming id, type and what was expected."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from airflow.sdk import Context

from airflow_outamation.exceptions import SFTPConnectionTypeError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync
from airflow_outamation.sensors.sftp import ReadyFilesSensor
from airflow_outamation.testing.event_loops import run
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.triggers.sftp import ReadyFilesTrigger

EXPECTED = "expected an 'sftp' (or 'ssh') connection with a host"


@pytest.fixture(params=["document_api", "no_host"])
def bad_conn(
    request: pytest.FixtureRequest, sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """A connection id given as ``sftp_conn_id`` by mistake, and the message it must fail with."""
    if request.param == "document_api":
        conn_id = request.getfixturevalue("document_api_conn_id")
        return conn_id, f"connection {conn_id!r} is of type 'outamation_document_api'; {EXPECTED}"
    conn = sftp_server.connection_dict()
    del conn["host"]
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_NO_HOST", json.dumps(conn))
    return "outamation_no_host", f"connection 'outamation_no_host' of type 'sftp' has no host; {EXPECTED}"


def trigger_event(trigger: ReadyFilesTrigger) -> dict[str, Any]:
    """The payload of the trigger's first event, run as the triggerer would."""
    return run(asyncio.wait_for(anext(trigger.run()), 30)).payload


def test_hook_fails_at_once(bad_conn: tuple[str, str]) -> None:
    conn_id, message = bad_conn
    with pytest.raises(SFTPConnectionTypeError) as raised:
        PooledSFTPHook(ssh_conn_id=conn_id)
    assert str(raised.value) == message


def test_async_hook_fails_at_once(bad_conn: tuple[str, str]) -> None:
    conn_id, message = bad_conn
    with pytest.raises(SFTPConnectionTypeError) as raised:
        run(PooledSFTPHookAsync(conn_id).list_directory_states("/"))
    assert str(raised.value) == message


def test_trigger_ends_with_an_error_event(bad_conn: tuple[str, str]) -> None:
    conn_id, message = bad_conn
    event = trigger_event(ReadyFilesTrigger(conn_id, "/input", poke_interval=0.2))
    assert event == {"status": "error", "error_type": "SFTPConnectionTypeError", "message": message}


def test_sensor_fails_on_its_first_look(bad_conn: tuple[str, str]) -> None:
    conn_id, message = bad_conn
    sensor = ReadyFilesSensor(task_id="wait", sftp_conn_id=conn_id, directory="/input", soft_fail=True)
    with pytest.raises(SFTPConnectionTypeError) as raised:
        sensor.execute(cast(Context, {}))
    assert str(raised.value) == message


def test_sensor_fails_on_the_triggers_event(bad_conn: tuple[str, str]) -> None:
    conn_id, message = bad_conn
    sensor = ReadyFilesSensor(task_id="wait", sftp_conn_id=conn_id, directory="/input", soft_fail=True)
    event = trigger_event(ReadyFilesTrigger(conn_id, "/input", poke_interval=0.2))
    with pytest.raises(SFTPConnectionTypeError) as raised:
        sensor.resume_execution("execute_complete", {"event": event}, cast(Context, {}))
    assert str(raised.value) == message
