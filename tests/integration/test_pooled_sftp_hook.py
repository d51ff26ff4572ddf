"""PooledSFTPHook against the real servers: pooling, healing, readiness, transfers."""

from __future__ import annotations

import gc
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import paramiko
import pytest

from airflow_outamation.exceptions import SFTPConnectError, SFTPPoolExhaustedError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.hooks.sftp_pool import DEFAULT_POOL_SIZE, PooledClient
from airflow_outamation.testing.pytest_plugin import set_airflow_connection
from airflow_outamation.testing.server_base import SftpTestServer


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def test_thirty_hook_instances_share_one_ssh_connection(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf")
    before = sftp_server.connections_opened()
    for _ in range(30):
        assert PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_directory(sftp_base) == ["a.pdf"]
    assert sftp_server.connections_opened() - before == 1
    stats = PooledSFTPHook(ssh_conn_id=sftp_conn_id).pool_stats()
    assert (stats["opened"], stats["reused"], stats["in_use"]) == (1, 29, 0)


def test_eight_threads_share_at_most_pool_size_connections(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    for i in range(8):
        sftp_server.write(f"{sftp_base}/f{i}.pdf", b"x" * (i + 1))
    before = sftp_server.connections_opened()
    errors: list[BaseException] = []
    results: list[int] = []

    def work(i: int) -> None:
        hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id, pool_size=3)
        try:
            for _ in range(50):
                results.append(len(hook.describe_directory(sftp_base)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert results == [8] * 400
    assert 1 <= sftp_server.connections_opened() - before <= 3


@pytest.mark.parametrize("fault", ["restart", "drop"])
def test_stale_connection_is_replaced_transparently(
    make_sftp_server, sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    server = make_sftp_server(sftp_server.kind)
    conn_id = set_airflow_connection(monkeypatch, "outamation_fault", server)
    base = server.remote_path("drop")
    server.write(f"{base}/a.pdf")
    hook = PooledSFTPHook(ssh_conn_id=conn_id)
    assert hook.list_directory(base) == ["a.pdf"]
    server.restart() if fault == "restart" else server.drop_connections()
    assert hook.list_directory(base) == ["a.pdf"]
    assert hook.isfile(f"{base}/a.pdf")
    stats = hook.pool_stats()
    assert stats["opened"] == 2
    assert stats["replaced"] == 1


def test_operation_on_a_connection_that_dies_mid_call_is_retried_once(
    make_sftp_server, sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_sftp_server(sftp_server.kind)
    conn_id = set_airflow_connection(monkeypatch, "outamation_midcall", server)
    base = server.remote_path("mid")
    server.write(f"{base}/a.pdf", b"abc")
    hook = PooledSFTPHook(ssh_conn_id=conn_id)
    hook.list_directory(base)
    # Fault injection: a session that passes the cheap health check but is gone (half-open TCP).
    monkeypatch.setattr(PooledClient, "is_alive", lambda self: True)
    hook.get_conn().sock.close()
    hook.close_conn()
    assert hook.get_mod_time(f"{base}/a.pdf")
    assert hook.pool_stats()["opened"] == 2
    assert hook.pool_stats()["replaced"] == 1


@pytest.mark.parametrize("fault", ["restart", "drop", "half-open"])
def test_transfers_survive_the_server_dropping_their_connection(
    make_sftp_server, sftp_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fault: str
) -> None:
    server = make_sftp_server(sftp_server.kind)
    conn_id = set_airflow_connection(monkeypatch, "outamation_transfer_fault", server)
    local = tmp_path / "doc.pdf"
    local.write_bytes(os.urandom(3 * 2**20))
    hook = PooledSFTPHook(ssh_conn_id=conn_id)
    remote = hook.upload_to_folder(str(local), server.remote_path("transfer"))
    if fault == "half-open":  # fault injection: the pool believes the dead connection is open
        monkeypatch.setattr(asyncssh.SSHClientConnection, "is_closed", lambda self: False)
    server.restart() if fault == "restart" else server.drop_connections()
    before = server.connections_opened()
    assert Path(hook.download_to_temp(remote)).read_bytes() == local.read_bytes()
    assert server.connections_opened() - before == 1
    server.restart() if fault == "restart" else server.drop_connections()
    again = hook.upload_to_folder(str(local), server.remote_path("transfer/again"))
    assert server.local_path(again).read_bytes() == local.read_bytes()


def test_missing_file_is_not_retried_and_keeps_the_connection(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    hook.list_directory(sftp_base)
    with pytest.raises(FileNotFoundError):
        hook.get_mod_time(f"{sftp_base}/nope.pdf")
    assert hook.pool_stats()["opened"] == 1
    assert hook.pool_stats()["replaced"] == 0


def test_edited_connection_gets_a_new_pool_entry(
    sftp_server: SftpTestServer, sftp_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = set_airflow_connection(monkeypatch, "outamation_edited", sftp_server)
    first = PooledSFTPHook(ssh_conn_id=conn_id)
    first.list_directory(sftp_base)
    old_pool = first.pool
    set_airflow_connection(monkeypatch, conn_id, sftp_server, conn_timeout=7)
    second = PooledSFTPHook(ssh_conn_id=conn_id)
    before = sftp_server.connections_opened()
    second.list_directory(sftp_base)
    assert second.pool is not old_pool
    assert sftp_server.connections_opened() - before == 1
    assert old_pool.stats.idle == 0


def test_private_connection_is_not_pooled(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    private = hook.get_conn(pooled=False)
    pooled = hook.get_conn()
    assert private is not pooled
    assert private.listdir(sftp_base) == []
    assert hook.pool_stats()["in_use"] == 1
    hook.close_conn()
    assert hook.pool_stats()["in_use"] == 0
    assert hook.pool_stats()["opened"] == 1


def test_list_ready_files_applies_every_rule(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    for name in (
        "ready.pdf",
        "UPPER.PDF",
        "a (1) é.pdf",
        "upload.pdf.part",
        ".hidden.pdf",
        "notes.txt",
        "~lock.pdf",
    ):
        sftp_server.write(f"{sftp_base}/{name}", b"%PDF-1.7 data")
    sftp_server.write(f"{sftp_base}/empty.pdf", b"")
    sftp_server.makedirs(f"{sftp_base}/folder.pdf")
    with sftp_server.growing_file(f"{sftp_base}/growing.pdf"):
        ready = PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_ready_files(sftp_base, stability_delay=0.5)
    assert sorted(f.filename for f in ready) == ["UPPER.PDF", "a (1) é.pdf", "ready.pdf"]
    assert all(f.size == len(b"%PDF-1.7 data") and f.path == f"{sftp_base}/{f.filename}" for f in ready)
    settled = PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_ready_files(sftp_base, stability_delay=0.3)
    assert "growing.pdf" in [f.filename for f in settled]


def test_list_ready_files_waits_once_for_the_whole_directory(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    for i in range(20):
        sftp_server.write(f"{sftp_base}/doc{i:02}.pdf")
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    sleeps: list[float] = []
    real_sleep = time.sleep
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(time, "sleep", lambda seconds: (sleeps.append(seconds), real_sleep(seconds)))
        ready = hook.list_ready_files(sftp_base, stability_delay=0.2)
    assert len(ready) == 20
    assert sleeps == [0.2]


def test_min_age_leaves_out_recent_files(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    old = sftp_server.write(f"{sftp_base}/old.pdf")
    os.utime(old, (time.time() - 600, time.time() - 600))
    sftp_server.write(f"{sftp_base}/new.pdf")
    ready = PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_ready_files(
        sftp_base, stability_delay=0.1, min_age=300
    )
    assert [f.filename for f in ready] == ["old.pdf"]


def test_is_file_fully_uploaded(sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str) -> None:
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    sftp_server.write(f"{sftp_base}/done.pdf", b"complete")
    assert hook.is_file_fully_uploaded(f"{sftp_base}/done.pdf", delay=0.2)
    growing = sftp_server.write(f"{sftp_base}/growing.pdf", b"start")
    timer = threading.Timer(0.1, lambda: growing.write_bytes(b"start and more"))
    timer.start()
    assert not hook.is_file_fully_uploaded(f"{sftp_base}/growing.pdf", delay=0.4)
    timer.join()


def test_upload_download_remove_with_awkward_names(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, tmp_path: Path
) -> None:
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    for name in ("with space.pdf", "ünïcödé 文書.pdf", "copy (2).pdf"):
        local = tmp_path / name
        local.write_bytes(os.urandom(70_000))
        remote = hook.upload_to_folder(str(local), f"{sftp_base}/out/deeper")
        assert remote == f"{sftp_base}/out/deeper/{name}"
        assert sftp_server.local_path(remote).read_bytes() == local.read_bytes()
        downloaded = hook.download_to_temp(remote)
        assert Path(downloaded).name == name
        assert Path(downloaded).read_bytes() == local.read_bytes()
        hook.remove_file(remote)
        assert not sftp_server.local_path(remote).exists()
    assert sorted(os.listdir(sftp_server.local_path(f"{sftp_base}/out/deeper"))) == []


def test_transfers_use_the_constructors_overrides(
    sftp_server: SftpTestServer, sftp_base: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    conn = sftp_server.connection_dict()
    conn["port"] = closed_port  # the connection points at a closed port, the constructor at the server
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_OVERRIDDEN_PORT", json.dumps(conn))
    hook = PooledSFTPHook(ssh_conn_id="outamation_overridden_port", port=sftp_server.port)
    local = tmp_path / "doc.pdf"
    local.write_bytes(os.urandom(70_000))

    remote = hook.upload_to_folder(str(local), f"{sftp_base}/out")
    downloaded = hook.download_to_temp(remote)

    assert sftp_server.local_path(remote).read_bytes() == local.read_bytes()
    assert Path(downloaded).read_bytes() == local.read_bytes()


@pytest.mark.parametrize("where", ["connection_extra", "constructor"])
def test_transfers_use_the_ciphers_of_the_connection_or_the_constructor(
    asyncssh_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    ciphers = ["aes256-ctr"]  # not the package's first choice (aes128-ctr)
    extra = {"ciphers": ciphers} if where == "connection_extra" else {}
    conn_id = set_airflow_connection(monkeypatch, "outamation_ciphers", asyncssh_server, **extra)
    hook = PooledSFTPHook(ssh_conn_id=conn_id, **({"ciphers": ciphers} if where == "constructor" else {}))
    local = tmp_path / "doc.pdf"
    local.write_bytes(os.urandom(1000))
    asyncssh_server.drop_connections()

    hook.upload_to_folder(str(local), asyncssh_server.remote_path(f"ciphers-{where}"))

    assert asyncssh_server.active_ciphers() == {"aes256-ctr"}  # the transfer's pooled connection


def test_upload_refuses_to_overwrite_unless_asked(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, tmp_path: Path
) -> None:
    sftp_server.write(f"{sftp_base}/doc.pdf", b"original")
    local = tmp_path / "doc.pdf"
    local.write_bytes(b"replacement")
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    with pytest.raises(Exception, match="refusing to overwrite"):
        hook.upload_to_folder(str(local), sftp_base)
    assert sftp_server.local_path(f"{sftp_base}/doc.pdf").read_bytes() == b"original"
    hook.upload_to_folder(str(local), sftp_base, overwrite=True)
    assert sftp_server.local_path(f"{sftp_base}/doc.pdf").read_bytes() == b"replacement"
    assert os.listdir(sftp_server.local_path(sftp_base)) == ["doc.pdf"]


def test_upload_never_exposes_a_partial_file(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, tmp_path: Path
) -> None:
    payload = os.urandom(8 * 1024 * 1024)
    local = tmp_path / "big.pdf"
    local.write_bytes(payload)
    target = sftp_server.local_path(f"{sftp_base}/big.pdf")
    seen_sizes: set[int] = set()
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            if target.exists():
                seen_sizes.add(target.stat().st_size)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        PooledSFTPHook(ssh_conn_id=sftp_conn_id).upload_to_folder(str(local), sftp_base)
    finally:
        done.set()
        watcher.join()
    assert seen_sizes <= {len(payload)}
    assert target.read_bytes() == payload
    assert os.listdir(sftp_server.local_path(sftp_base)) == ["big.pdf"]


def _drop_the_connection_before(
    monkeypatch: pytest.MonkeyPatch, method: str, times: int | None = 1
) -> list[str]:
    """Fault injection: ``paramiko.SFTPClient.<method>`` closes its SSH transport first (``times`` times)."""
    drops: list[str] = []
    original = getattr(paramiko.SFTPClient, method)

    def dropping(self: paramiko.SFTPClient, path: str, *args: Any) -> Any:
        if times is None or len(drops) < times:
            drops.append(path)
            self.get_channel().get_transport().close()
        return original(self, path, *args)

    monkeypatch.setattr(paramiko.SFTPClient, method, dropping)
    return drops


@pytest.mark.parametrize(
    ("call", "sftp_method", "expected"),
    [
        ("list_directory", "listdir", ["a.pdf"]),
        ("isdir", "stat", True),
        ("path_exists", "stat", True),
    ],
)
def test_inherited_method_retries_a_call_whose_connection_dropped_instead_of_a_wrong_answer(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    monkeypatch: pytest.MonkeyPatch,
    call: str,
    sftp_method: str,
    expected: Any,
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf")
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    drops = _drop_the_connection_before(monkeypatch, sftp_method)

    assert getattr(hook, call)(sftp_base) == expected

    assert drops == [sftp_base]
    assert hook.pool_stats()["opened"] == 2


def test_inherited_method_raises_when_the_retry_drops_too(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    _drop_the_connection_before(monkeypatch, "listdir", times=None)
    with pytest.raises(SFTPConnectError, match=f"{sftp_conn_id}.*result was discarded"):
        hook.list_directory(sftp_base)


def test_held_client_whose_connection_dropped_raises_instead_of_a_wrong_answer(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    hook.get_conn()
    _drop_the_connection_before(monkeypatch, "stat")
    with pytest.raises(SFTPConnectError, match="result was discarded"):
        hook.isdir(sftp_base)
    hook.close_conn()
    assert hook.isdir(sftp_base) is True


def _get_conn_and_drop_the_hook(conn_id: str) -> None:
    PooledSFTPHook(ssh_conn_id=conn_id).get_conn()  # what stock SFTPHook users do: no close_conn()


def test_clients_of_dropped_hooks_go_back_to_the_pool(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/a.pdf")
    for _ in range(10):
        _get_conn_and_drop_the_hook(sftp_conn_id)
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)
    assert hook.list_directory(sftp_base) == ["a.pdf"]
    assert hook.get_conn().listdir(sftp_base) == ["a.pdf"]
    hook.close_conn()
    assert hook.pool_stats()["opened"] <= DEFAULT_POOL_SIZE
    gc.collect()  # hooks a log record's frame keeps in a cycle go too
    assert hook.pool_stats()["in_use"] == 0


def test_checkout_from_a_pool_held_by_unreturned_get_conn_clients_fails_clearly(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    holders = [PooledSFTPHook(ssh_conn_id=sftp_conn_id, pool_size=2) for _ in range(2)]
    for holder in holders:
        holder.get_conn()
    waiting = PooledSFTPHook(ssh_conn_id=sftp_conn_id, pool_size=2, pool_timeout=0.5)
    with pytest.raises(SFTPPoolExhaustedError) as raised:
        waiting.list_directory(sftp_base)
    message = str(raised.value)
    assert repr(sftp_conn_id) in message
    assert "2 of them lent by get_conn() and not returned" in message
    holders[0].close_conn()
    assert waiting.list_directory(sftp_base) == []
