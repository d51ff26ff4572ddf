"""ReadyFilesEventTrigger against real servers, run in one event loop as the triggerer runs it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from airflow.triggers.base import TriggerEvent

from airflow_outamation.hooks.sftp_async import DEFAULT_POOL_SIZE
from airflow_outamation.testing.event_loops import run
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.triggers.sftp_event import ReadyFilesEventTrigger

FAST = {"poke_interval": 0.2, "stability_delay": 0.4}


class Collector:
    """Run a trigger in the background and keep the payloads of its events."""

    def __init__(self, trigger: ReadyFilesEventTrigger) -> None:
        self.events: list[dict[str, Any]] = []
        self._task = asyncio.create_task(self._collect(trigger.run()))

    async def _collect(self, events: AsyncIterator[TriggerEvent]) -> None:
        async for event in events:
            self.events.append(event.payload)

    def ready_names(self) -> list[list[str]]:
        return [[f["filename"] for f in e["files"]] for e in self.events if e["status"] == "ready"]

    async def wait_for(self, count: int, timeout: float = 30) -> None:
        """Wait until ``count`` events arrived."""
        async with asyncio.timeout(timeout):
            while len(self.events) < count:
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


def test_a_growing_file_is_announced_once_after_it_stops_growing(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    async def scenario() -> tuple[list[list[str]], int, int]:
        trigger = ReadyFilesEventTrigger(sftp_conn_id, sftp_base, project_id="acme", **FAST)
        collector = Collector(trigger)
        with sftp_server.growing_file(f"{sftp_base}/upload.pdf") as local:
            await asyncio.sleep(2.0)  # ten polls while it grows
            assert collector.events == [], "announced while the file was still growing"
        await collector.wait_for(1)
        await asyncio.sleep(2.0)  # ten more polls: the file is still there, not claimed
        await collector.stop()
        return collector.ready_names(), collector.events[0]["files"][0]["size"], local.stat().st_size

    names, announced_size, final_size = run(scenario())
    assert names == [["upload.pdf"]]
    assert announced_size == final_size


def test_files_arriving_one_second_apart_are_each_announced_once(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    async def scenario() -> list[list[str]]:
        collector = Collector(ReadyFilesEventTrigger(sftp_conn_id, sftp_base, project_id="acme", **FAST))
        sftp_server.write(f"{sftp_base}/a.pdf")
        await asyncio.sleep(1.0)
        sftp_server.write(f"{sftp_base}/b.pdf")
        await asyncio.sleep(3.0)
        await collector.stop()
        return collector.ready_names()

    names = run(scenario())
    assert sorted(name for event in names for name in event) == ["a.pdf", "b.pdf"]
    assert 1 <= len(names) <= 2


def test_a_file_landing_while_another_is_claimed_is_announced(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    async def scenario() -> list[list[str]]:
        collector = Collector(ReadyFilesEventTrigger(sftp_conn_id, sftp_base, project_id="acme", **FAST))
        sftp_server.write(f"{sftp_base}/a.pdf")
        await collector.wait_for(1)
        sftp_server.local_path(f"{sftp_base}/a.pdf").unlink()  # a run claimed it...
        sftp_server.write(f"{sftp_base}/b.pdf")  # ...while this one landed
        await collector.wait_for(2)
        await asyncio.sleep(2.0)
        await collector.stop()
        return collector.ready_names()

    assert run(scenario()) == [["a.pdf"], ["b.pdf"]]


def test_a_recursive_watcher_announces_files_in_subfolders_once_each(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    for name in ("a/x.pdf", "b/x.pdf"):
        sftp_server.write(f"{sftp_base}/{name}")

    async def scenario() -> list[list[str]]:
        trigger = ReadyFilesEventTrigger(sftp_conn_id, sftp_base, recursive=True, **FAST)
        collector = Collector(trigger)
        await collector.wait_for(1)
        await asyncio.sleep(2.0)  # ten more polls: the files are still there, not claimed
        await collector.stop()
        return [[f["path"] for f in e["files"]] for e in collector.events]

    assert run(scenario()) == [[f"{sftp_base}/a/x.pdf", f"{sftp_base}/b/x.pdf"]]


def test_a_file_still_waiting_after_reannounce_after_is_announced_again(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    async def scenario() -> list[list[str]]:
        trigger = ReadyFilesEventTrigger(sftp_conn_id, sftp_base, reannounce_after=1.5, **FAST)
        collector = Collector(trigger)
        sftp_server.write(f"{sftp_base}/a.pdf")
        await collector.wait_for(2)
        await collector.stop()
        return collector.ready_names()

    assert run(scenario()) == [["a.pdf"], ["a.pdf"]]


def test_a_restarted_trigger_does_not_announce_files_its_store_remembers(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    store = MemoryStateStore()

    async def scenario() -> tuple[list[list[str]], list[list[str]]]:
        first = ReadyFilesEventTrigger(sftp_conn_id, sftp_base, **FAST)
        first.asset_state_store = store  # type: ignore[assignment]
        before = Collector(first)
        sftp_server.write(f"{sftp_base}/a.pdf")
        await before.wait_for(1)
        await asyncio.sleep(1.0)
        await before.stop()
        sftp_server.write(f"{sftp_base}/b.pdf")  # lands while the triggerer is down
        second = ReadyFilesEventTrigger(sftp_conn_id, sftp_base, **FAST)
        second.asset_state_store = store  # type: ignore[assignment]
        after = Collector(second)
        await after.wait_for(1)
        await asyncio.sleep(1.5)
        await after.stop()
        return before.ready_names(), after.ready_names()

    assert run(scenario()) == ([["a.pdf"]], [["b.pdf"]])


class MemoryStateStore:
    """The watched asset's state store as the triggerer gives it, kept in memory (one asset)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))

    async def adelete(self, key: str) -> None:
        self.values.pop(key, None)


def test_missing_folder_is_reported_once_naming_project_server_and_folder(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, capsys: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        collector = Collector(
            ReadyFilesEventTrigger(sftp_conn_id, f"{sftp_base}/nope", project_id="acme", **FAST)
        )
        await collector.wait_for(1)
        await asyncio.sleep(1.5)  # seven poke intervals: no second attempt, no second event
        await collector.stop()
        return collector.events

    events = run(scenario())
    server = f"{sftp_server.username}@{sftp_server.host}:{sftp_server.port}"
    assert events == [
        {
            "status": "error",
            "project_id": "acme",
            "directory": f"{sftp_base}/nope",
            "error_type": "SFTPPathError",
            "message": f"no such file or directory: {sftp_base}/nope on SFTP server {server} "
            f"(connection {sftp_conn_id!r})",
        }
    ]
    (line,) = [line for line in capsys.readouterr().out.splitlines() if "cannot watch" in line]
    assert f"Project acme cannot watch {sftp_base}/nope: SFTPPathError: {events[0]['message']}; " in line
    assert "retrying in 120 s" in line


def test_wrong_credentials_are_reported_without_a_tight_loop(
    sftp_server: SftpTestServer, sftp_base: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = tmp_path / "wrong_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(key))
    conn = sftp_server.connection_dict(key_file=str(key))
    if sftp_server.password is not None:  # the asyncssh server also takes the password
        conn["password"] = "wrong-password"
    conn_id = "outamation_event_wrong_creds"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
    attempts_before = sftp_server.connection_attempts()

    async def scenario() -> list[dict[str, Any]]:
        collector = Collector(ReadyFilesEventTrigger(conn_id, sftp_base, project_id="acme", **FAST))
        await collector.wait_for(1)
        await asyncio.sleep(3.0)  # fifteen poke intervals
        await collector.stop()
        return collector.events

    events = run(scenario())
    assert [event["error_type"] for event in events] == ["SFTPAuthenticationError"]
    assert f"{sftp_server.host}:{sftp_server.port}" in events[0]["message"]
    assert "wrong-password" not in events[0]["message"]
    assert sftp_server.connection_attempts() - attempts_before == 1


def test_twenty_watched_folders_on_one_connection_share_the_pool(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    folders = [f"{sftp_base}/p{index:02}" for index in range(20)]
    for folder in folders:
        sftp_server.makedirs(folder)
    before = sftp_server.connections_opened()

    async def scenario() -> list[list[str]]:
        collectors = [Collector(ReadyFilesEventTrigger(sftp_conn_id, folder, **FAST)) for folder in folders]
        for folder in folders:
            sftp_server.write(f"{folder}/doc.pdf")
        for collector in collectors:
            await collector.wait_for(1)
        for collector in collectors:
            await collector.stop()
        return [names for collector in collectors for names in collector.ready_names()]

    assert run(scenario()) == [["doc.pdf"]] * 20
    assert 1 <= sftp_server.connections_opened() - before <= DEFAULT_POOL_SIZE
