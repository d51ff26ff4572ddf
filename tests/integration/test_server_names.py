"""Names as the server sends them: not UTF-8, symbolic links, control characters; private clients."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_outamation.exceptions import SFTPPathError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync
from airflow_outamation.name_text import path_of
from airflow_outamation.operators.document_api import SubmitBatchesOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator, ProjectStatusOperator
from airflow_outamation.sensors.sftp import ReadyFilesSensor
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.event_loops import run
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.triggers.sftp_event import ReadyFilesEventTrigger

LATIN1_NAME = b"Rechnung_M\xfcller.pdf"  # what an older Windows client sends for "Rechnung_Müller.pdf"
AS_RECEIVED = LATIN1_NAME.decode("utf-8", "surrogateescape")
DATE = "11262026"
FORGED = "evil\n[error] Batch msg_0 accepted\x1b[31m.pdf"
#: How the servers' listings name it, escaped: rclone shows control characters as symbols (␊, ␛).
FORGED_SHOWN = {"rclone": "evil␊[error] Batch msg_0 accepted␛[31m.pdf"}
#: Servers that serve no symbolic link at all (rclone skips them unless started with --links).
LINKS_HIDDEN = {"rclone"}
#: C0, DEL, C1 and lone surrogates: none may reach a log line raw.
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@pytest.fixture(autouse=True)
def _empty_pools() -> Iterator[None]:
    PooledSFTPHook.close_all()
    yield
    PooledSFTPHook.close_all()


def _context(dag_id: str = "ingest") -> Any:
    return {
        "logical_date": datetime(2026, 11, 26, tzinfo=timezone.utc),
        "run_id": f"manual__{os.urandom(4).hex()}",
        "dag_run": SimpleNamespace(dag_id=dag_id),
    }


def _write_raw(server: SftpTestServer, remote_dir: str, name: bytes, data: bytes = b"%PDF-1.7\n") -> None:
    """Create a file whose name is the exact bytes ``name`` (not necessarily UTF-8)."""
    folder = server.makedirs(remote_dir)
    with open(os.path.join(os.fsencode(folder), name), "wb") as handle:
        handle.write(data)


def _raw_names(server: SftpTestServer, remote_dir: str) -> list[bytes]:
    return sorted(os.listdir(os.fsencode(server.local_path(remote_dir))))


def _claim(sftp_conn_id: str, base: str, **kwargs: Any) -> list[dict[str, Any]]:
    operator = ClaimFilesOperator(
        task_id="claim_files", sftp_conn_id=sftp_conn_id, base_path=base, stability_delay=0.2, **kwargs
    )
    return operator.execute(_context())


# --- names that are not UTF-8 ------------------------------------------------------------------------


def test_a_name_that_is_not_utf8_does_not_block_the_listing(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    _write_raw(sftp_server, f"{sftp_base}/input", LATIN1_NAME)
    sftp_server.write(f"{sftp_base}/input/plain.pdf")

    ready = PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_ready_files(
        f"{sftp_base}/input", stability_delay=0.2
    )
    states = run(PooledSFTPHookAsync(sftp_conn_id).list_directory_states(f"{sftp_base}/input"))

    assert sorted(file.filename for file in ready) == [AS_RECEIVED, "plain.pdf"]
    assert sorted(states) == [AS_RECEIVED, "plain.pdf"]


def test_the_watcher_announces_a_name_that_is_not_utf8_on_one_connection(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    _write_raw(sftp_server, sftp_base, LATIN1_NAME)
    opened_before = sftp_server.connections_opened()

    async def first_event() -> dict[str, Any]:
        trigger = ReadyFilesEventTrigger(
            sftp_conn_id, sftp_base, project_id="acme", poke_interval=0.2, stability_delay=0.4
        )
        events = trigger.run()
        async with asyncio.timeout(20):
            event = await anext(events)
        await events.aclose()  # type: ignore[attr-defined]
        return event.payload

    payload = run(first_event())
    assert payload["status"] == "ready"
    assert [file["filename"] for file in payload["files"]] == ["Rechnung_M\\xfcller.pdf"]
    assert [path_of(file) for file in payload["files"]] == [f"{sftp_base}/{AS_RECEIVED}"]
    json.dumps(payload, ensure_ascii=False).encode("utf-8")  # as Airflow's API client sends it
    assert sftp_server.connections_opened() - opened_before == 1


def test_a_claim_gives_a_name_that_is_not_utf8_a_utf8_name_and_keeps_the_original_in_the_manifest(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    _write_raw(sftp_server, f"{sftp_base}/input", LATIN1_NAME, b"%PDF new")
    _write_raw(sftp_server, f"{sftp_base}/in_progress/{DATE}", b"Alt_\xe4.pdf")  # one claimed earlier

    claimed = _claim(sftp_conn_id, sftp_base)

    assert [(file["filename"], file["source_path"]) for file in claimed] == [
        ("Rechnung_Müller.pdf", f"{sftp_base}/input/Rechnung_Müller.pdf")
    ]
    assert _raw_names(sftp_server, f"{sftp_base}/input") == []
    in_progress = _raw_names(sftp_server, f"{sftp_base}/in_progress/{DATE}")
    assert in_progress == sorted([b".claims", b"Alt_\xe4.pdf", "Rechnung_Müller.pdf".encode()])
    claims_dir = sftp_server.local_path(f"{sftp_base}/in_progress/{DATE}/.claims")
    assert [path.name for path in claims_dir.iterdir() if path.is_dir()] == []  # nothing left staged
    (manifest,) = [path for path in claims_dir.glob("*.json") if not path.name.endswith(".placed.json")]
    assert json.loads(manifest.read_bytes())["files"][0]["path"] == f"{sftp_base}/input/{AS_RECEIVED}"


def test_the_name_encoding_decides_the_claimed_name(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    # cp437: "Äüä"; cp1252 leaves 0x81 undefined
    _write_raw(sftp_server, f"{sftp_base}/input", b"\x8e\x81\x84.pdf")

    claimed = _claim(sftp_conn_id, sftp_base, name_encoding="{{ 'cp437' }}")
    default = _claim(sftp_conn_id, sftp_base)  # nothing left to claim: a no-op run
    _write_raw(sftp_server, f"{sftp_base}/input", b"\x8e\x81\x84.pdf")
    cp1252 = _claim(sftp_conn_id, sftp_base)

    assert [file["filename"] for file in claimed] == ["Äüä.pdf"]
    assert default == []
    assert [file["filename"] for file in cp1252] == ["Ž\x81„.pdf"]  # latin-1 for the byte cp1252 leaves out


def test_an_unknown_name_encoding_fails_the_claim_at_once(sftp_conn_id: str, sftp_base: str) -> None:
    with pytest.raises(AirflowFailException, match="'latin-7' is not an encoding"):
        _claim(sftp_conn_id, sftp_base, name_encoding="latin-7")


def test_a_file_that_changed_goes_back_to_the_input_folder_under_its_original_bytes(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    _write_raw(sftp_server, f"{sftp_base}/input", LATIN1_NAME)
    files = [{"path": f"{sftp_base}/input/{AS_RECEIVED}", "size": 1, "mtime": 0}]

    claimed = _claim(sftp_conn_id, sftp_base, files=files)

    assert claimed == []
    assert _raw_names(sftp_server, f"{sftp_base}/input") == [LATIN1_NAME]
    claims_dir = sftp_server.local_path(f"{sftp_base}/in_progress/{DATE}/.claims")
    assert [path.name for path in claims_dir.iterdir() if path.is_dir()] == []


def test_a_name_that_is_not_utf8_in_the_dated_folder_does_not_block_status_or_claims(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    _write_raw(sftp_server, f"{sftp_base}/in_progress/{DATE}", LATIN1_NAME)
    _write_raw(sftp_server, f"{sftp_base}/in_progress/{DATE}/.claims", b"stray_\xff.json", b"{}")
    sftp_server.write(f"{sftp_base}/input/plain.pdf")

    claimed = _claim(sftp_conn_id, sftp_base)
    status = ProjectStatusOperator(task_id="status", sftp_conn_id=sftp_conn_id, base_path=sftp_base).execute(
        _context()
    )

    assert [file["filename"] for file in claimed] == ["plain.pdf"]
    assert status["total"]["claimed"] >= 1


# --- symbolic links ----------------------------------------------------------------------------------


def _link(server: SftpTestServer, target: str, link: Path) -> None:
    """A symbolic link on the server's file system; the test is skipped where the server hides links."""
    if server.kind in LINKS_HIDDEN:
        pytest.skip(f"{server.kind} serves no symbolic links: none can lead a run anywhere")
    os.symlink(target, link)


def _two_projects(server: SftpTestServer, root: str) -> tuple[str, str]:
    """``<root>/acme`` with ``east -> ../beta`` and ``input/elsewhere.pdf`` -> beta's file."""
    server.write(f"{root}/beta/input/beta_invoice.pdf")
    server.makedirs(f"{root}/acme/input")
    acme = server.local_path(f"{root}/acme")
    _link(server, "../beta", acme / "east")
    _link(server, "../../beta/input/beta_invoice.pdf", acme / "input" / "elsewhere.pdf")
    return f"{root}/acme", f"{root}/beta"


def test_a_symlinked_folder_cannot_lead_a_run_into_another_project(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    acme, beta = _two_projects(sftp_server, sftp_base)

    with pytest.raises(AirflowFailException) as claim_error:
        _claim(sftp_conn_id, f"{acme}/east", project_root=acme)
    sensor = ReadyFilesSensor(
        task_id="wait", sftp_conn_id=sftp_conn_id, directory=f"{acme}/east/input", project_root=acme
    )
    with pytest.raises(AirflowFailException):
        sensor.execute(_context())
    status = ProjectStatusOperator(
        task_id="status", sftp_conn_id=sftp_conn_id, base_path=f"{acme}/east", project_root=acme
    )
    with pytest.raises(AirflowFailException):
        status.execute(_context())

    assert f"{acme}/east" in str(claim_error.value)
    assert acme in str(claim_error.value)
    assert os.listdir(sftp_server.local_path(f"{beta}/input")) == ["beta_invoice.pdf"]


def test_a_folder_inside_the_project_passes_the_server_side_check(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    acme, _ = _two_projects(sftp_server, sftp_base)
    sftp_server.write(f"{acme}/west/input/west.pdf")
    hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id)

    claimed = _claim(sftp_conn_id, f"{acme}/west", project_root=acme)

    assert [file["filename"] for file in claimed] == ["west.pdf"]
    missing = f"{acme}/west/in_progress/not_yet/there"
    assert hook.confine(missing, acme) == missing
    with pytest.raises(SFTPPathError, match="outside the project's folder"):
        hook.confine(f"{acme}/east/new_folder", acme)


def test_an_input_folder_linked_elsewhere_or_nowhere_fails_the_claim(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/beta/input/beta_invoice.pdf")
    gamma = sftp_server.makedirs(f"{sftp_base}/gamma")
    delta = sftp_server.makedirs(f"{sftp_base}/delta")
    _link(sftp_server, "../beta/input", gamma / "input")
    _link(sftp_server, "../nowhere", delta / "input")

    with pytest.raises(SFTPPathError, match="outside the project's folder"):
        _claim(sftp_conn_id, f"{sftp_base}/gamma")  # no project_root: confined to base_path
    # A link to nothing: resolved to its target outside (asyncssh, OpenSSH) or not at all (ProFTPD).
    with pytest.raises(SFTPPathError, match=r"outside the project's folder|no such file or directory"):
        _claim(sftp_conn_id, f"{sftp_base}/delta")

    assert os.listdir(sftp_server.local_path(f"{sftp_base}/beta/input")) == ["beta_invoice.pdf"]


def test_a_symlink_in_the_input_folder_is_never_ready(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    acme, beta = _two_projects(sftp_server, sftp_base)

    ready = PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_ready_files(f"{acme}/input", stability_delay=0.2)
    states = run(PooledSFTPHookAsync(sftp_conn_id).list_directory_states(f"{acme}/input"))
    claimed = _claim(sftp_conn_id, acme, project_root=acme)

    assert ready == []
    assert states["elsewhere.pdf"].is_regular is False
    assert claimed == []
    assert os.listdir(sftp_server.local_path(f"{beta}/input")) == ["beta_invoice.pdf"]


# --- control characters in names ---------------------------------------------------------------------


def test_names_with_control_characters_are_escaped_in_every_log_line(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    sftp_server.write(f"{sftp_base}/input/{FORGED}")
    _write_raw(sftp_server, f"{sftp_base}/input", LATIN1_NAME)
    sftp_server.write(f"{sftp_base}/input/changed.pdf")
    sensor = ReadyFilesSensor(
        task_id="wait", sftp_conn_id=sftp_conn_id, directory=f"{sftp_base}/input", stability_delay=0.2
    )
    ready = sensor.execute(_context())
    for file in ready["files"]:  # one file changed since it was found ready: the claim logs it as skipped
        if file["filename"] == "changed.pdf":
            file["size"] += 1

    claimed = _claim(sftp_conn_id, sftp_base, files=ready)
    SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=claimed,
        uploaded_by="tester",
        source="SFTP",
        document_api_conn_id=document_api_conn_id,
        sftp_conn_id=sftp_conn_id,
    ).execute(_context())

    captured = capfd.readouterr()
    messages = [record.getMessage() for record in caplog.records]
    logs = "\n".join(messages) + captured.out + captured.err
    assert len(claimed) == 2
    assert FORGED_SHOWN.get(sftp_server.kind, "evil\\n[error] Batch msg_0 accepted\\x1b[31m.pdf") in logs
    assert "Rechnung_M\\xfcller.pdf" in logs
    assert "changed.pdf" in logs
    assert [message for message in messages if CONTROL.search(message)] == []
    assert not any(CONTROL.search(line) for line in (captured.out + captured.err).splitlines())


# --- private clients ---------------------------------------------------------------------------------


def test_a_private_client_lives_as_long_as_its_caller_holds_it(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    sftp_server.write(f"{sftp_base}/kept.pdf")

    sftp = PooledSFTPHook(ssh_conn_id=sftp_conn_id).get_conn(pooled=False)
    gc.collect()

    assert sftp.listdir(sftp_base) == ["kept.pdf"]
    transport = sftp.get_channel().get_transport()  # type: ignore[union-attr]
    del sftp
    gc.collect()
    assert not transport.is_active()  # the SSH connection closed with the client


def test_a_name_that_cannot_be_sent_does_not_cost_the_watchers_connection(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    async def two_listings() -> None:
        hook = PooledSFTPHookAsync(sftp_conn_id)
        await hook.list_directory_states(sftp_base)
        with pytest.raises(UnicodeError):
            await hook.list_directory_states(f"{sftp_base}/\ud800")  # no bytes can stand for it
        await hook.list_directory_states(sftp_base)

    opened_before = sftp_server.connections_opened()
    run(two_listings())
    assert sftp_server.connections_opened() - opened_before == 1
