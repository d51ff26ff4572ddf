"""
Jump hosts and proxy commands on both transports, against a target sshd reachable only through a jump sshd.

The sync hook (paramiko) and the async hook (asyncssh: trigger, event watcher, transfers) must take
the same route; host keys are checked on both hops and an error says which hop failed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_outamation.exceptions import SFTPConnectError, SFTPConnectionTypeError, SFTPHostKeyError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync
from airflow_outamation.testing.event_loops import run
from airflow_outamation.testing.jump_host import JumpHostRoute
from airflow_outamation.testing.process_server import free_port

TARGET = "outamation_test_jump_target"
JUMP = "outamation_test_jump"

pytestmark = pytest.mark.sshd


@pytest.fixture(autouse=True)
def _close_pools() -> None:
    PooledSFTPHook.close_all()
    run(PooledSFTPHookAsync.close_all())


def _set(monkeypatch: pytest.MonkeyPatch, conn_id: str, conn_json: str) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json)


@pytest.fixture
def base(jump_host_route: JumpHostRoute, tmp_path: Path) -> str:
    """A fresh folder on the target holding one file."""
    folder = jump_host_route.target.remote_path(tmp_path.name)
    jump_host_route.target.write(f"{folder}/a.pdf", b"%PDF-1 through the jump host")
    return folder


@pytest.fixture
def via_jump(jump_host_route: JumpHostRoute, monkeypatch: pytest.MonkeyPatch) -> str:
    """The target's connection with ``jump_host`` naming the jump sshd's connection."""
    _set(monkeypatch, JUMP, jump_host_route.jump_connection_json())
    _set(monkeypatch, TARGET, jump_host_route.target_connection_json(jump_host=JUMP))
    return TARGET


def test_target_is_unreachable_directly(
    jump_host_route: JumpHostRoute, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set(monkeypatch, TARGET, jump_host_route.target_connection_json())
    with pytest.raises(SFTPConnectError):
        PooledSFTPHook(TARGET).list_directory(base)
    with pytest.raises(SFTPConnectError):
        run(PooledSFTPHookAsync(TARGET).list_directory_states(base))


def test_sync_hook_goes_through_jump_host(jump_host_route: JumpHostRoute, base: str, via_jump: str) -> None:
    hook = PooledSFTPHook(via_jump)
    assert hook.list_directory(base) == ["a.pdf"]
    local = hook.download_to_temp(f"{base}/a.pdf")  # a transfer: the asyncssh twin's route
    assert Path(local).read_bytes() == b"%PDF-1 through the jump host"
    Path(local).unlink()


def test_async_hook_goes_through_jump_host(jump_host_route: JumpHostRoute, base: str, via_jump: str) -> None:
    states = run(PooledSFTPHookAsync(via_jump).list_directory_states(base))
    assert states["a.pdf"].size == len(b"%PDF-1 through the jump host")


def test_closing_the_pools_closes_the_jump_connections(
    jump_host_route: JumpHostRoute, base: str, via_jump: str
) -> None:
    jump = jump_host_route.jump
    PooledSFTPHook(via_jump).list_directory(base)
    assert jump.connections_active() == 1

    PooledSFTPHook.close_all()
    assert _settled(jump.connections_active) == 0

    run(PooledSFTPHookAsync(via_jump).list_directory_states(base))  # closes its pool at the end
    assert _settled(jump.connections_active) == 0


def _settled(count: Callable[[], int]) -> int:
    """``count()`` once it reached 0, or after 10 s (sshd ends a connection's process a moment later)."""
    deadline = time.monotonic() + 10
    while count() and time.monotonic() < deadline:
        time.sleep(0.05)
    return count()


@pytest.mark.parametrize("transport", ["paramiko", "asyncssh"])
def test_jump_host_key_is_checked(
    jump_host_route: JumpHostRoute, base: str, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    wrong = jump_host_route.target.host_key_line
    _set(monkeypatch, JUMP, jump_host_route.jump_connection_json(host_key=wrong))
    _set(monkeypatch, TARGET, jump_host_route.target_connection_json(jump_host=JUMP))
    with pytest.raises(SFTPHostKeyError, match=rf"jump host .*\(connection '{JUMP}'\)") as raised:
        _list(transport, base)
    assert "BEGIN" not in str(raised.value)


@pytest.mark.parametrize("transport", ["paramiko", "asyncssh"])
def test_target_host_key_is_checked_through_the_jump_host(
    jump_host_route: JumpHostRoute, base: str, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    _set(monkeypatch, JUMP, jump_host_route.jump_connection_json())
    wrong = jump_host_route.jump.host_key_line
    _set(monkeypatch, TARGET, jump_host_route.target_connection_json(jump_host=JUMP, host_key=wrong))
    with pytest.raises(SFTPHostKeyError, match=rf"^SFTP server .*\(connection '{TARGET}'\) presented"):
        _list(transport, base)


@pytest.mark.parametrize("transport", ["paramiko", "asyncssh"])
def test_a_target_the_jump_host_cannot_reach_is_named(
    jump_host_route: JumpHostRoute, base: str, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    _set(monkeypatch, JUMP, jump_host_route.jump_connection_json())
    conn = json.loads(jump_host_route.target_connection_json(jump_host=JUMP))
    conn["port"] = jump_host_route.namespace.run(free_port)  # nothing listens there
    _set(monkeypatch, TARGET, json.dumps(conn))
    with pytest.raises(SFTPConnectError, match=rf"jump host \(connection '{JUMP}'\) could not open"):
        _list(transport, base)


@pytest.mark.parametrize("transport", ["paramiko", "asyncssh"])
def test_proxy_command_extra(
    jump_host_route: JumpHostRoute, base: str, monkeypatch: pytest.MonkeyPatch, transport: str
) -> None:
    proxy = jump_host_route.proxy_command()
    _set(monkeypatch, TARGET, jump_host_route.target_connection_json(proxy_command=proxy))
    assert _list(transport, base) == ["a.pdf"]


def test_jump_host_and_proxy_command_together_are_refused(
    jump_host_route: JumpHostRoute, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = json.loads(jump_host_route.target_connection_json(jump_host=JUMP, proxy_command="nc %h %p"))
    _set(monkeypatch, TARGET, json.dumps(conn))
    with pytest.raises(SFTPConnectionTypeError, match="both jump_host and proxy_command"):
        PooledSFTPHook(TARGET)


def _list(transport: str, directory: str) -> list[str]:
    if transport == "paramiko":
        return sorted(PooledSFTPHook(TARGET).list_directory(directory))
    return sorted(run(PooledSFTPHookAsync(TARGET).list_directory_states(directory)))
