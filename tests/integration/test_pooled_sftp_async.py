"""PooledSFTPHookAsync against real servers: listings, pooling, clear errors, surviving restarts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import asyncssh
import pytest
from airflow.sdk.exceptions import AirflowException

from airflow_outamation.exceptions import (
    SFTPAuthenticationError,
    SFTPConnectError,
    SFTPHostKeyError,
    SFTPPathError,
)
from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync
from airflow_outamation.readiness import FileState
from airflow_outamation.testing.event_loops import run
from airflow_outamation.testing.pytest_plugin import set_airflow_connection
from airflow_outamation.testing.server_base import SftpTestServer


def _wrong_key(tmp_path: Path) -> str:
    path = tmp_path / "wrong_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(path))
    path.chmod(0o600)
    return str(path)


def test_lists_directory_with_attributes(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf", b"12345")
    sftp_server.write(f"{sftp_base}/.hidden", b"x")
    sftp_server.makedirs(f"{sftp_base}/sub")
    mtime = sftp_server.local_path(f"{sftp_base}/a.pdf").stat().st_mtime

    states = run(PooledSFTPHookAsync(sftp_conn_id).list_directory_states(sftp_base))

    assert set(states) == {"a.pdf", ".hidden", "sub"}
    assert states["a.pdf"] == FileState(size=5, mtime=float(int(mtime)), is_regular=True)
    assert states["sub"].is_regular is False


def test_stat_file(sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str) -> None:
    sftp_server.write(f"{sftp_base}/b.pdf", b"123")
    assert run(PooledSFTPHookAsync(sftp_conn_id).stat_file(f"{sftp_base}/b.pdf")).size == 3


def test_calls_share_pooled_connections(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf")
    before = sftp_server.connections_opened()

    async def many_calls() -> list[dict[str, FileState]]:
        hooks = [PooledSFTPHookAsync(sftp_conn_id, pool_size=3) for _ in range(30)]
        listings = await asyncio.gather(*(hook.list_directory_states(sftp_base) for hook in hooks))
        # Inherited SFTPHookAsync methods go through the same pool.
        assert await hooks[0].path_exists(f"{sftp_base}/a.pdf")
        return [*listings, await hooks[0].list_directory_states(sftp_base)]

    listings = run(many_calls())

    assert all(set(listing) == {"a.pdf"} for listing in listings)
    assert 1 <= sftp_server.connections_opened() - before <= 3


def test_missing_directory_is_a_path_error(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    with pytest.raises(SFTPPathError) as error:
        run(PooledSFTPHookAsync(sftp_conn_id).list_directory_states(f"{sftp_base}/missing"))
    server = f"{sftp_server.username}@{sftp_server.host}:{sftp_server.port}"
    where = f"SFTP server {server} (connection {sftp_conn_id!r})"
    assert str(error.value) == f"no such file or directory: {sftp_base}/missing on {where}"


def test_wrong_credentials_fail_at_once_without_secrets(
    sftp_server: SftpTestServer, sftp_base: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    conn_id = set_airflow_connection(
        monkeypatch, "outamation_wrong_creds", sftp_server, key_file=_wrong_key(tmp_path)
    )
    if sftp_server.password is not None:
        conn = json.loads(sftp_server.connection_json(key_file=_wrong_key(tmp_path)))
        conn["password"] = "not-the-password-42"
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))

    with pytest.raises(SFTPAuthenticationError) as error:
        run(PooledSFTPHookAsync(conn_id).list_directory_states(sftp_base))
    assert f"{sftp_server.host}:{sftp_server.port}" in str(error.value)
    assert "not-the-password-42" not in str(error.value)


@pytest.mark.parametrize(
    "host_key",
    [
        pytest.param(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl", id="wrong"
        ),
        pytest.param(None, id="unknown"),
    ],
)
def test_untrusted_host_key_is_refused(
    sftp_server: SftpTestServer,
    sftp_base: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    host_key: str | None,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/known_hosts to fall back on
    extras = {"host_key": host_key} if host_key else {}
    conn_id = set_airflow_connection(
        monkeypatch, "outamation_bad_host_key", sftp_server, with_host_key=False, **extras
    )
    with pytest.raises(SFTPHostKeyError, match=f"{sftp_server.host}:{sftp_server.port}"):
        run(PooledSFTPHookAsync(conn_id).list_directory_states(sftp_base))


@pytest.mark.parametrize("kind", ["asyncssh", pytest.param("openssh", marks=pytest.mark.sshd)])
def test_idle_connections_dropped_by_a_restart_are_replaced(
    kind: str, make_sftp_server: Callable[[str], SftpTestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_sftp_server(kind)
    conn_id = set_airflow_connection(monkeypatch, f"outamation_restart_{kind}", server)
    inbox = server.remote_path("in")
    server.write(f"{inbox}/a.pdf")

    async def across_restart() -> dict[str, FileState]:
        hook = PooledSFTPHookAsync(conn_id)
        await hook.list_directory_states(inbox)
        server.restart()
        await asyncio.sleep(0.2)  # let the client notice the closed socket
        return await hook.list_directory_states(inbox)

    assert set(run(across_restart())) == {"a.pdf"}
    assert server.connections_opened() == 2


def test_server_down_is_a_transient_connect_error(
    make_sftp_server: Callable[[str], SftpTestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_sftp_server("asyncssh")
    conn_id = set_airflow_connection(monkeypatch, "outamation_down", server)
    server.stop()
    with pytest.raises(SFTPConnectError, match=f"{server.host}:{server.port}"):
        run(PooledSFTPHookAsync(conn_id).list_directory_states("/"))


def test_edited_connection_gets_new_connections(
    make_sftp_server: Callable[[str], SftpTestServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_sftp_server("asyncssh")
    conn_id = set_airflow_connection(monkeypatch, "outamation_edited", server)
    server.write("/in/a.pdf")

    async def edit_between_calls() -> int:
        hook = PooledSFTPHookAsync(conn_id)
        await hook.list_directory_states("/in")
        set_airflow_connection(monkeypatch, conn_id, server, conn_timeout="11")
        await hook.list_directory_states("/in")
        await asyncio.sleep(0.2)
        return server.connections_active()

    assert run(edit_between_calls()) == 1  # the old settings' connection was closed
    assert server.connections_opened() == 2


def test_inherited_calls_on_a_missing_file_keep_the_pooled_connection(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    missing = f"{sftp_base}/missing.pdf"
    sftp_server.write(f"{sftp_base}/here.pdf")

    async def fifty_misses() -> None:
        hook = PooledSFTPHookAsync(sftp_conn_id)
        for _ in range(50):
            with pytest.raises(AirflowException, match="No files matching"):
                await hook.get_mod_time(missing)
        assert await hook.get_mod_time(f"{sftp_base}/here.pdf")

    before = sftp_server.connections_opened()
    run(fifty_misses())
    assert sftp_server.connections_opened() - before == 1


def test_a_cancellation_arriving_as_a_listing_completes_is_not_swallowed(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection: the triggerer cancels a watcher just as its listing's answer arrives. With
    # asyncio.wait_for on Python < 3.12 (CPython gh-86296) the cancellation was lost and the
    # watcher's poll loop went on forever (seen as a hung trigger test in CI).
    sftp_server.write(f"{sftp_base}/a.pdf")
    real_readdir = asyncssh.SFTPClient.readdir

    async def scenario() -> bool:
        lister: asyncio.Task[dict[str, FileState]] | None = None

        async def readdir_then_cancel(self: asyncssh.SFTPClient, path: str) -> list[asyncssh.SFTPName]:
            entries = await real_readdir(self, path)
            assert lister is not None
            lister.cancel()  # in the same step as the answer
            return entries

        monkeypatch.setattr(asyncssh.SFTPClient, "readdir", readdir_then_cancel)
        lister = asyncio.create_task(PooledSFTPHookAsync(sftp_conn_id).list_directory_states(sftp_base))
        try:
            await asyncio.wait_for(asyncio.shield(lister), 10)
        except asyncio.CancelledError:
            pass
        finally:
            await PooledSFTPHookAsync.close_all()
        return lister.cancelled()

    assert run(scenario()), "the cancellation was swallowed: the listing returned normally"
