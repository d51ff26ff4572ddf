"""ReadyFilesTrigger against real servers, run in one event loop as the triggerer runs it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from airflow.sdk.module_loading import import_string
from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_outamation.hooks.sftp_async import DEFAULT_POOL_SIZE, PooledSFTPHookAsync
from airflow_outamation.readiness import ReadinessSettings
from airflow_outamation.testing.event_loops import run
from airflow_outamation.testing.pytest_plugin import set_airflow_connection
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.triggers.sftp import ReadyFilesTrigger
from airflow_outamation.triggers.sftp_event import ReadyFilesEventTrigger

FAST = {"poke_interval": 0.2, "stability_delay": 0.4}


async def first(trigger: ReadyFilesTrigger, timeout: float = 30) -> TriggerEvent:
    """The trigger's first event (the triggerer stops a trigger after it)."""
    events = trigger.run()
    try:
        return await asyncio.wait_for(events.__anext__(), timeout)
    finally:
        await events.aclose()


async def first_event(trigger: ReadyFilesTrigger, timeout: float = 30) -> dict[str, Any]:
    """The payload of the trigger's first event."""
    return (await first(trigger, timeout)).payload


def test_stable_file_fires(sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str) -> None:
    sftp_server.write(f"{sftp_base}/doc.pdf", b"%PDF-1.7 stable")
    mtime = sftp_server.local_path(f"{sftp_base}/doc.pdf").stat().st_mtime

    event = run(first_event(ReadyFilesTrigger(sftp_conn_id, sftp_base, **FAST)))

    assert event["status"] == "success"
    assert event["files"] == [
        {"path": f"{sftp_base}/doc.pdf", "filename": "doc.pdf", "size": 15, "mtime": float(int(mtime))}
    ]


def test_ends_the_task_in_the_triggerer_with_the_summary_as_its_xcom(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/doc.pdf", b"%PDF-1.7 stable")
    trigger = ReadyFilesTrigger(sftp_conn_id, sftp_base, end_from_trigger=True, **FAST)

    event = run(first(trigger))

    assert isinstance(event, TaskSuccessEvent)  # the sensor is not resumed on a worker
    assert event.xcoms is not None
    xcom = event.xcoms["return_value"]
    assert [file["filename"] for file in xcom["files"]] == ["doc.pdf"]
    assert xcom["file_count"] == 1
    assert xcom["directory"] == sftp_base
    assert xcom["digest"]
    assert ReadinessSettings.from_dict(xcom["readiness"]) == ReadinessSettings(stability_delay=0.4)


def test_second_read_confirms_a_stable_file_without_extra_wait(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sftp_server.write(f"{sftp_base}/doc.pdf")
    reads: list[str] = []
    list_directory_states = PooledSFTPHookAsync.list_directory_states

    async def counted(self: PooledSFTPHookAsync, directory: str, recursive: bool = False) -> dict[str, Any]:
        reads.append(directory)
        return await list_directory_states(self, directory, recursive)

    monkeypatch.setattr(PooledSFTPHookAsync, "list_directory_states", counted)
    trigger = ReadyFilesTrigger(sftp_conn_id, sftp_base, poke_interval=60, stability_delay=0.3)

    event = run(first_event(trigger))

    assert [file["filename"] for file in event["files"]] == ["doc.pdf"]
    assert reads == [sftp_base, sftp_base]  # one listing, one more after stability_delay (not 60 s)


def test_files_arriving_with_the_first_ready_ones_are_passed_on_together(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf")
    list_directory_states = PooledSFTPHookAsync.list_directory_states
    reads = 0

    async def more_after_the_first_read(
        self: PooledSFTPHookAsync, *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        nonlocal reads
        listing = await list_directory_states(self, *args, **kwargs)
        reads += 1
        if reads == 1:  # b.pdf arrives between the look that sees a.pdf and the one that finds it ready
            sftp_server.write(f"{sftp_base}/b.pdf")
        return listing

    monkeypatch.setattr(PooledSFTPHookAsync, "list_directory_states", more_after_the_first_read)
    trigger = ReadyFilesTrigger(sftp_conn_id, sftp_base, poke_interval=0.2, stability_delay=0.4)

    event = run(first_event(trigger))

    assert [file["filename"] for file in event["files"]] == ["a.pdf", "b.pdf"]  # one run, not two


def test_growing_file_fires_only_after_it_stops_growing(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    async def wait_while_writing() -> dict[str, Any]:
        with sftp_server.growing_file(f"{sftp_base}/upload.pdf") as local:
            trigger = ReadyFilesTrigger(sftp_conn_id, sftp_base, poke_interval=0.2, stability_delay=0.5)
            waiting = asyncio.create_task(first_event(trigger))
            await asyncio.sleep(2.0)
            assert not waiting.done(), "the trigger fired while the file was still growing"
        return {**await waiting, "final_size": local.stat().st_size}

    event = run(wait_while_writing())
    assert event["files"][0]["size"] == event["final_size"]


def test_temporary_hidden_empty_and_other_files_never_fire(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    for name in (
        "a.pdf.part",
        "b.pdf.filepart",
        "c.tmp",
        "~d.pdf",
        "e.pdf.crdownload",
        ".f.pdf",
        "notes.txt",
    ):
        sftp_server.write(f"{sftp_base}/{name}", b"content")
    sftp_server.write(f"{sftp_base}/empty.pdf", b"")
    sftp_server.makedirs(f"{sftp_base}/folder.pdf")

    async def add_good_file_later() -> dict[str, Any]:
        waiting = asyncio.create_task(first_event(ReadyFilesTrigger(sftp_conn_id, sftp_base, **FAST)))
        await asyncio.sleep(1.5)  # several polls over files that are all stable
        assert not waiting.done(), f"fired on files that are never ready: {waiting.result()}"
        sftp_server.write(f"{sftp_base}/good.PDF", b"%PDF-1.7")
        return await waiting

    event = run(add_good_file_later())
    assert [file["filename"] for file in event["files"]] == ["good.PDF"]


def test_max_files_caps_the_event(sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str) -> None:
    for index in range(5):
        sftp_server.write(f"{sftp_base}/doc{index}.pdf")
    event = run(first_event(ReadyFilesTrigger(sftp_conn_id, sftp_base, max_files=2, **FAST)))
    assert [file["filename"] for file in event["files"]] == ["doc0.pdf", "doc1.pdf"]


def test_missing_directory_ends_with_an_error_event(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    event = run(first_event(ReadyFilesTrigger(sftp_conn_id, f"{sftp_base}/nope", **FAST), timeout=10))
    assert event["status"] == "error"
    assert event["error_type"] == "SFTPPathError"
    server = f"{sftp_server.username}@{sftp_server.host}:{sftp_server.port}"
    where = f"SFTP server {server} (connection {sftp_conn_id!r})"
    assert event["message"] == f"no such file or directory: {sftp_base}/nope on {where}"


def test_wrong_credentials_end_with_an_error_event(
    sftp_server: SftpTestServer, sftp_base: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = tmp_path / "wrong_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
    conn = sftp_server.connection_dict(key_file=str(key))
    if sftp_server.password is not None:  # the asyncssh server also takes the password
        conn["password"] = "wrong-password"
    conn_id = "outamation_trigger_wrong_creds"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    event = run(first_event(ReadyFilesTrigger(conn_id, sftp_base, **FAST), timeout=10))

    assert event["status"] == "error"
    assert event["error_type"] == "SFTPAuthenticationError"
    assert f"{sftp_server.host}:{sftp_server.port}" in event["message"]
    assert "wrong-password" not in event["message"]


@pytest.mark.parametrize("kind", ["asyncssh", pytest.param("openssh", marks=pytest.mark.sshd)])
def test_survives_a_server_restart_mid_wait(
    kind: str, make_sftp_server: Callable[[str], SftpTestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_sftp_server(kind)
    conn_id = set_airflow_connection(monkeypatch, f"outamation_trigger_restart_{kind}", server)
    inbox = server.remote_path("in")
    server.makedirs(inbox)

    async def restart_while_waiting() -> dict[str, Any]:
        waiting = asyncio.create_task(first_event(ReadyFilesTrigger(conn_id, inbox, **FAST)))
        for _ in range(200):  # restart only after the trigger's first connection, however loaded the machine
            if server.connections_opened() >= 1:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.stop)
        await asyncio.sleep(1.0)  # polls now fail: refused connections, retried with backoff
        await asyncio.to_thread(server.start)
        server.write(f"{inbox}/after-restart.pdf")
        return await waiting

    event = run(restart_while_waiting())
    assert [file["filename"] for file in event["files"]] == ["after-restart.pdf"]
    assert server.connections_opened() >= 2


@pytest.mark.parametrize("kind", ["asyncssh", pytest.param("openssh", marks=pytest.mark.sshd)])
def test_deadline_on_a_stopped_server_ends_with_an_unreachable_timeout(
    kind: str, make_sftp_server: Callable[[str], SftpTestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_sftp_server(kind)
    conn_id = set_airflow_connection(monkeypatch, f"outamation_trigger_down_{kind}", server)
    inbox = server.remote_path("in")
    server.makedirs(inbox)
    server.stop()

    event = run(first_event(ReadyFilesTrigger(conn_id, inbox, deadline=time.time() + 1.0, **FAST)))

    assert event["status"] == "timeout"
    assert event["reachable"] is False
    assert event["error_type"] == "SFTPConnectError"
    assert event["unreachable_for"] > 0
    assert f"{server.host}:{server.port}" in event["message"]


def test_deadline_on_a_reachable_empty_folder_ends_with_a_reachable_timeout(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    event = run(first_event(ReadyFilesTrigger(sftp_conn_id, sftp_base, deadline=time.time() + 1.0, **FAST)))
    assert event == {
        "status": "timeout",
        "reachable": True,
        "message": f"no ready file in {sftp_base} before the deadline",
    }


def test_fifty_triggers_share_pooled_connections(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    for index in range(50):
        sftp_server.write(f"{sftp_base}/d{index:02}/doc.pdf")
    before = sftp_server.connections_opened()

    async def fifty() -> list[dict[str, Any]]:
        triggers = [
            ReadyFilesTrigger(sftp_conn_id, f"{sftp_base}/d{index:02}", **FAST) for index in range(50)
        ]
        return await asyncio.gather(*(first_event(trigger) for trigger in triggers))

    events = run(fifty())

    assert [event["files"][0]["path"] for event in events] == [
        f"{sftp_base}/d{index:02}/doc.pdf" for index in range(50)
    ]
    assert 1 <= sftp_server.connections_opened() - before <= DEFAULT_POOL_SIZE


SETTINGS = ReadinessSettings(pattern="*.PDF", stability_delay=2.5, min_age=3, min_size=10)
EVENT_ARGS = {"project_id": "acme", "reannounce_after": 120}


@pytest.mark.parametrize(
    ("trigger_class", "own_args"),
    [
        (ReadyFilesTrigger, {"deadline": 1_900_000_000.5, "end_from_trigger": True}),
        (ReadyFilesEventTrigger, EVENT_ARGS),
    ],
)
def test_serialize_round_trips(trigger_class: type[BaseTrigger], own_args: dict[str, Any]) -> None:
    common = {"max_files": 7, "poke_interval": 9, **own_args}
    trigger = trigger_class("conn", "/base/input", settings=SETTINGS, **common)
    classpath, kwargs = trigger.serialize()
    rebuilt = import_string(classpath)(**kwargs)
    assert type(rebuilt) is trigger_class
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "sftp_conn_id": "conn",
        "directory": "/base/input",
        "settings": {"pattern": "*.PDF", "stability_delay": 2.5, "min_age": 3.0, "min_size": 10},
        **common,
    }
    # A trigger serialized before readiness settings were one value (loose arguments) resumes the same.
    legacy = trigger_class("conn", "/base/input", **SETTINGS.serialize(), **common)
    assert legacy.serialize() == (classpath, kwargs)
    if isinstance(trigger, ReadyFilesTrigger):  # serialized by 0.4: the sensor resumes on a worker
        kwargs.pop("end_from_trigger")
        assert import_string(classpath)(**kwargs).end_from_trigger is False
    if isinstance(trigger, ReadyFilesEventTrigger):
        assert rebuilt.shared_stream_key() == trigger.shared_stream_key() == legacy.shared_stream_key()
