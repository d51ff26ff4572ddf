"""ReadyFilesSensor against real servers: deferral, resumption, timeout, soft_fail and errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import pytest
from airflow.sdk import Context
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_outamation.exceptions import SFTPConnectError, SFTPPathError
from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync
from airflow_outamation.sensors.sftp import DEFERRAL_GRACE, ReadyFilesSensor
from airflow_outamation.testing.pytest_plugin import set_airflow_connection
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.triggers.sftp import ReadyFilesTrigger

CONTEXT = cast(Context, {})


def defer(sensor: ReadyFilesSensor) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(CONTEXT)
    return deferred.value


def trigger_event(trigger: ReadyFilesTrigger) -> dict[str, Any]:
    """Run the trigger as the triggerer would and return its first event's payload."""

    async def first() -> dict[str, Any]:
        events = trigger.run()
        try:
            return (await asyncio.wait_for(events.__anext__(), 30)).payload
        finally:
            await events.aclose()
            await PooledSFTPHookAsync.close_all()

    return asyncio.run(first())


def resume(sensor: ReadyFilesSensor, deferred: TaskDeferred) -> Any:
    """Resume the sensor with the event of the trigger it deferred to."""
    assert isinstance(deferred.trigger, ReadyFilesTrigger)
    event = trigger_event(deferred.trigger)
    return sensor.resume_execution(deferred.method_name, {"event": event}, CONTEXT)


def _where(server: SftpTestServer, conn_id: str) -> str:
    """How every error names the server and connection."""
    return f"SFTP server {server.username}@{server.host}:{server.port} (connection {conn_id!r})"


def test_files_already_waiting_are_passed_on_without_deferring(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    for name in ("a", "b", "c"):
        sftp_server.write(f"{sftp_base}/{name}.pdf", b"%PDF " + name.encode())
    sensor = ReadyFilesSensor(
        task_id="wait", sftp_conn_id=sftp_conn_id, directory=sftp_base, max_files=2, stability_delay=0.3
    )

    files = sensor.execute(CONTEXT)  # no TaskDeferred: a backlog skips the triggerer

    assert [f["filename"] for f in files] == ["a.pdf", "b.pdf"]


def test_defers_by_default_and_returns_ready_files(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sensor = ReadyFilesSensor(
        task_id="wait",
        sftp_conn_id=sftp_conn_id,
        directory=sftp_base,
        max_files=2,
        stability_delay=0.3,
        poke_interval=0.2,
        timeout=600,
    )

    deferred = defer(sensor)

    assert deferred.timeout == timedelta(seconds=600 + DEFERRAL_GRACE)
    kwargs = deferred.trigger.serialize()[1]
    assert 599 < kwargs.pop("deadline") - time.time() <= 600
    assert kwargs == {
        "sftp_conn_id": sftp_conn_id,
        "directory": sftp_base,
        "pattern": "*.pdf",
        "stability_delay": 0.3,
        "min_age": 0,
        "min_size": 1,
        "max_files": 2,
        "poke_interval": 0.2,
    }
    for name in ("a", "b", "c"):  # they arrive while the sensor waits in the triggerer
        sftp_server.write(f"{sftp_base}/{name}.pdf", b"%PDF " + name.encode())
    files = resume(sensor, deferred)
    assert [(f["path"], f["filename"], f["size"]) for f in files] == [
        (f"{sftp_base}/a.pdf", "a.pdf", 6),
        (f"{sftp_base}/b.pdf", "b.pdf", 6),
    ]


@pytest.mark.parametrize("soft_fail", [False, True])
def test_missing_directory_fails_even_with_soft_fail(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, soft_fail: bool
) -> None:
    sensor = ReadyFilesSensor(
        task_id="wait",
        sftp_conn_id=sftp_conn_id,
        directory=f"{sftp_base}/missing",
        poke_interval=0.2,
        soft_fail=soft_fail,
    )
    with pytest.raises(SFTPPathError) as raised:
        sensor.execute(CONTEXT)  # the first look, in the worker
    assert (
        str(raised.value)
        == f"no such file or directory: {sftp_base}/missing on {_where(sftp_server, sftp_conn_id)}"
    )


@pytest.mark.parametrize("soft_fail", [False, True])
def test_directory_removed_while_deferred_fails_even_with_soft_fail(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, soft_fail: bool
) -> None:
    sftp_server.makedirs(f"{sftp_base}/gone")
    sensor = ReadyFilesSensor(
        task_id="wait",
        sftp_conn_id=sftp_conn_id,
        directory=f"{sftp_base}/gone",
        poke_interval=0.2,
        stability_delay=0.2,
        soft_fail=soft_fail,
    )
    deferred = defer(sensor)
    sftp_server.local_path(f"{sftp_base}/gone").rmdir()
    with pytest.raises(SFTPPathError) as raised:
        resume(sensor, deferred)  # the trigger's error
    assert (
        str(raised.value)
        == f"no such file or directory: {sftp_base}/gone on {_where(sftp_server, sftp_conn_id)}"
    )


@pytest.mark.parametrize(
    ("soft_fail", "expected"), [(False, AirflowSensorTimeout), (True, AirflowSkipException)]
)
def test_deferral_timeout_honours_soft_fail(soft_fail: bool, expected: type[Exception]) -> None:
    sensor = ReadyFilesSensor(task_id="wait", sftp_conn_id="any", directory="/in", soft_fail=soft_fail)
    with pytest.raises(expected):
        sensor.resume_execution(TRIGGER_FAIL_REPR, {"error": TriggerFailureReason.TRIGGER_TIMEOUT}, CONTEXT)


def poke_sensor(conn_id: str, directory: str, **kwargs: Any) -> ReadyFilesSensor:
    return ReadyFilesSensor(
        task_id="wait",
        sftp_conn_id=conn_id,
        directory=directory,
        deferrable=False,
        stability_delay=0.3,
        poke_interval=0.2,
        **kwargs,
    )


def test_poke_mode_returns_ready_files(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf", b"%PDF a")
    sftp_server.write(f"{sftp_base}/b.pdf.part", b"%PDF b")

    files = poke_sensor(sftp_conn_id, sftp_base, timeout=30).execute(CONTEXT)

    assert [(f["path"], f["filename"], f["size"]) for f in files] == [(f"{sftp_base}/a.pdf", "a.pdf", 6)]


@pytest.mark.parametrize(
    ("soft_fail", "expected"), [(False, AirflowSensorTimeout), (True, AirflowSkipException)]
)
def test_poke_mode_without_files_times_out_or_skips(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, soft_fail: bool, expected: type[Exception]
) -> None:
    with pytest.raises(expected):
        poke_sensor(sftp_conn_id, sftp_base, timeout=1, soft_fail=soft_fail).execute(CONTEXT)


def test_poke_mode_missing_directory_fails(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    with pytest.raises(SFTPPathError, match=f"{sftp_base}/missing"):
        poke_sensor(sftp_conn_id, f"{sftp_base}/missing", timeout=30, soft_fail=True).execute(CONTEXT)


@pytest.fixture(params=["asyncssh", pytest.param("openssh", marks=pytest.mark.sshd)])
def stopped_server(
    request: pytest.FixtureRequest,
    make_sftp_server: Callable[[str], SftpTestServer],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[str, SftpTestServer]:
    """A connection to a real server of each kind that was stopped: its port refuses connections."""
    server = make_sftp_server(request.param)
    conn_id = set_airflow_connection(monkeypatch, f"outamation_stopped_{request.param}", server)
    server.makedirs(server.remote_path("input"))
    server.stop()
    return conn_id, server


def _gave_up_on(server: SftpTestServer, conn_id: str) -> str:
    """How a wait that ended while the server was unreachable begins its error, in both modes."""
    directory, where = server.remote_path("input"), _where(server, conn_id)
    return f"gave up waiting for files in {directory}: {where} was unreachable for the last "


@pytest.mark.parametrize("soft_fail", [False, True])
def test_poke_mode_wait_on_an_unreachable_server_fails_even_with_soft_fail(
    stopped_server: tuple[str, SftpTestServer], soft_fail: bool
) -> None:
    conn_id, server = stopped_server
    sensor = poke_sensor(conn_id, server.remote_path("input"), timeout=1, soft_fail=soft_fail)
    with pytest.raises(SFTPConnectError) as raised:
        sensor.execute(CONTEXT)
    assert str(raised.value).startswith(_gave_up_on(server, conn_id))


@pytest.mark.parametrize("soft_fail", [False, True])
def test_deferred_wait_on_an_unreachable_server_fails_even_with_soft_fail(
    stopped_server: tuple[str, SftpTestServer], soft_fail: bool
) -> None:
    conn_id, server = stopped_server
    sensor = ReadyFilesSensor(
        task_id="wait",
        sftp_conn_id=conn_id,
        directory=server.remote_path("input"),
        poke_interval=0.2,
        timeout=1,
        soft_fail=soft_fail,
    )
    with pytest.raises(SFTPConnectError) as raised:
        resume(sensor, defer(sensor))
    assert str(raised.value).startswith(_gave_up_on(server, conn_id))


@pytest.mark.parametrize(
    ("soft_fail", "expected"), [(False, AirflowSensorTimeout), (True, AirflowSkipException)]
)
def test_deferred_wait_on_a_reachable_empty_folder_times_out_or_skips(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, soft_fail: bool, expected: type[Exception]
) -> None:
    sensor = ReadyFilesSensor(
        task_id="wait",
        sftp_conn_id=sftp_conn_id,
        directory=sftp_base,
        poke_interval=0.2,
        timeout=1,
        soft_fail=soft_fail,
    )
    with pytest.raises(expected):
        resume(sensor, defer(sensor))
