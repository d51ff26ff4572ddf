"""ReadyFilesSensor against real servers: deferral, resumption, timeout, soft_fail and errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest
from airflow.listeners import hookimpl
from airflow.sdk import Asset, Context
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred
from airflow.sdk.listener import get_listener_manager
from airflow.triggers.base import TaskSuccessEvent, TriggerEvent

from airflow_outamation.exceptions import SFTPConnectError, SFTPPathError
from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync
from airflow_outamation.sensors.sftp import DEFERRAL_GRACE, ReadyFilesSensor, task_listeners
from airflow_outamation.testing.pytest_plugin import set_airflow_connection
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.triggers.sftp import ReadyFilesTrigger
from airflow_outamation.triggers.sftp_event import ReadyFilesEventTrigger

CONTEXT = cast(Context, {})


def defer(sensor: ReadyFilesSensor) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(CONTEXT)
    return deferred.value


def first_event(trigger: ReadyFilesTrigger | ReadyFilesEventTrigger) -> TriggerEvent:
    """Run the trigger as the triggerer would and return its first event."""

    async def first() -> TriggerEvent:
        events = trigger.run()
        try:
            return await asyncio.wait_for(events.__anext__(), 30)
        finally:
            await events.aclose()
            await PooledSFTPHookAsync.close_all()

    return asyncio.run(first())


def trigger_event(trigger: ReadyFilesTrigger | ReadyFilesEventTrigger) -> dict[str, Any]:
    """The payload of the trigger's first event."""
    return first_event(trigger).payload


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

    files = sensor.execute(CONTEXT)["files"]  # no TaskDeferred: a backlog skips the triggerer

    assert [f["filename"] for f in files] == ["a.pdf", "b.pdf"]


@pytest.mark.parametrize("end_from_trigger", [True, False])
def test_defers_and_returns_ready_files(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, end_from_trigger: bool
) -> None:
    """Both ways a found file ends the wait give the claim the same XCom: from the trigger, or resumed."""
    sensor = ReadyFilesSensor(
        task_id="wait",
        deferrable=True,
        sftp_conn_id=sftp_conn_id,
        directory=sftp_base,
        max_files=2,
        stability_delay=0.3,
        poke_interval=0.2,
        timeout=600,
        end_in_triggerer=end_from_trigger,
    )

    deferred = defer(sensor)

    assert deferred.timeout == timedelta(seconds=600 + DEFERRAL_GRACE)
    kwargs = deferred.trigger.serialize()[1]
    assert 599 < kwargs.pop("deadline") - time.time() <= 600
    assert kwargs == {
        "sftp_conn_id": sftp_conn_id,
        "directory": sftp_base,
        "settings": {"pattern": "*.pdf", "stability_delay": 0.3, "min_age": 0, "min_size": 1},
        "max_files": 2,
        "poke_interval": 0.2,
        "end_from_trigger": end_from_trigger,
    }
    for name in ("a", "b", "c"):  # they arrive while the sensor waits in the triggerer
        sftp_server.write(f"{sftp_base}/{name}.pdf", b"%PDF " + name.encode())
    if end_from_trigger:  # the trigger ends the task: its event carries the XCom the sensor would return
        event = first_event(deferred.trigger)  # type: ignore[arg-type]
        assert isinstance(event, TaskSuccessEvent)
        assert event.xcoms is not None
        xcom = event.xcoms["return_value"]
    else:
        xcom = resume(sensor, deferred)
    assert xcom["readiness"] == {"pattern": "*.pdf", "stability_delay": 0.3, "min_age": 0, "min_size": 1}
    files = xcom["files"]
    assert [(f["path"], f["filename"], f["size"]) for f in files] == [
        (f"{sftp_base}/a.pdf", "a.pdf", 6),
        (f"{sftp_base}/b.pdf", "b.pdf", 6),
    ]


class _TaskListener:
    """A plugin's listener of task instances, as OpenLineage's: it must see the sensor end on a worker."""

    @hookimpl
    def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
        pass


def test_resumes_on_a_worker_where_a_plugin_listens_to_task_instances(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sensor = ReadyFilesSensor(
        task_id="wait", sftp_conn_id=sftp_conn_id, directory=sftp_base, deferrable=True, end_in_triggerer=True
    )
    listener = _TaskListener()
    assert not task_listeners()  # this provider's own listener (run notes) watches DAG runs only
    assert defer(sensor).trigger.serialize()[1]["end_from_trigger"] is True
    get_listener_manager().add_listener(listener)
    try:
        assert task_listeners()
        assert defer(sensor).trigger.serialize()[1]["end_from_trigger"] is False
    finally:
        get_listener_manager().pm.unregister(listener)


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
        deferrable=True,
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
    arguments = {"deferrable": False, "stability_delay": 0.3, "poke_interval": 0.2, **kwargs}
    return ReadyFilesSensor(task_id="wait", sftp_conn_id=conn_id, directory=directory, **arguments)


def test_poke_mode_returns_ready_files(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf", b"%PDF a")
    sftp_server.write(f"{sftp_base}/b.pdf.part", b"%PDF b")

    files = poke_sensor(sftp_conn_id, sftp_base, timeout=30).execute(CONTEXT)["files"]

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
        deferrable=True,
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
        deferrable=True,
        sftp_conn_id=sftp_conn_id,
        directory=sftp_base,
        poke_interval=0.2,
        timeout=1,
        soft_fail=soft_fail,
    )
    with pytest.raises(expected):
        resume(sensor, defer(sensor))


#: A stability delay a test would notice being waited.
STABILITY_NEVER_WAITED = 20.0


def watcher_event(sftp_conn_id: str, directory: str, stamp: str) -> SimpleNamespace:
    """The first event of the folder's real watcher, as a run started by it sees it in its context."""
    trigger = ReadyFilesEventTrigger(sftp_conn_id, directory, project_id="acme", stability_delay=0.3)
    payload = trigger_event(trigger)
    assert payload["status"] == "ready"
    # Airflow stores a watcher's event as an asset event with this extra (airflow.models.trigger).
    return SimpleNamespace(extra={"from_trigger": True, "payload": payload}, timestamp=stamp)


def event_mode_sensor(sftp_conn_id: str, directory: str, **kwargs: Any) -> ReadyFilesSensor:
    """wait_for_files of an event-mode project: looks once, without deferring."""
    return poke_sensor(sftp_conn_id, directory, timeout=0, soft_fail=True, **kwargs)


def started_by(*events: SimpleNamespace) -> Context:
    return cast(Context, {"triggering_asset_events": {Asset("outamation://acme/input"): list(events)}})


def test_a_run_started_by_the_watcher_takes_its_announced_files_without_waiting_again(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf", b"%PDF a")
    event = watcher_event(sftp_conn_id, sftp_base, "2026-11-26T10:00:00")
    sensor = event_mode_sensor(sftp_conn_id, sftp_base, stability_delay=STABILITY_NEVER_WAITED)

    started = time.monotonic()
    files = sensor.execute(started_by(event))["files"]

    assert [(f["filename"], f["size"]) for f in files] == [("a.pdf", 6)]
    assert time.monotonic() - started < STABILITY_NEVER_WAITED / 2, "waited stability_delay again"


def test_a_ready_file_whose_event_the_run_did_not_consume_is_taken_too(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    # Workaround test for apache/airflow#56050: an event arriving while the run waited for
    # max_active_runs is not among its triggering events and starts no run of its own.
    sftp_server.write(f"{sftp_base}/a.pdf", b"%PDF a")
    event = watcher_event(sftp_conn_id, sftp_base, "2026-11-26T10:00:00")
    sftp_server.write(f"{sftp_base}/b.pdf", b"%PDF b")  # announced in an event this run did not get

    files = event_mode_sensor(sftp_conn_id, sftp_base).execute(started_by(event))["files"]

    assert [f["filename"] for f in files] == ["a.pdf", "b.pdf"]


def test_a_file_still_growing_beside_the_announced_one_is_left_for_a_later_run(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf", b"%PDF a")
    event = watcher_event(sftp_conn_id, sftp_base, "2026-11-26T10:00:00")
    with sftp_server.growing_file(f"{sftp_base}/upload.pdf"):
        files = event_mode_sensor(sftp_conn_id, sftp_base).execute(started_by(event))["files"]

    assert [f["filename"] for f in files] == ["a.pdf"]


def test_an_announced_file_changed_since_is_looked_at_again(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf", b"%PDF a")
    event = watcher_event(sftp_conn_id, sftp_base, "2026-11-26T10:00:00")
    sftp_server.write(f"{sftp_base}/a.pdf", b"%PDF a, rewritten")

    files = event_mode_sensor(sftp_conn_id, sftp_base).execute(started_by(event))["files"]

    assert [(f["filename"], f["size"]) for f in files] == [("a.pdf", 17)]


def test_announced_files_an_earlier_run_took_leave_the_run_skipped(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf", b"%PDF a")
    event = watcher_event(sftp_conn_id, sftp_base, "2026-11-26T10:00:00")
    sftp_server.local_path(f"{sftp_base}/a.pdf").unlink()  # claimed by an earlier run

    with pytest.raises(AirflowSkipException):
        event_mode_sensor(sftp_conn_id, sftp_base).execute(started_by(event))
