"""The status page's reads: bounded in time, never started twice per project, counted on real servers."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.plugins.status_data import BoundedReads, project_rows, projects_file, read_projects
from airflow_outamation.projects import Project, parse_entry, parse_projects
from airflow_outamation.testing.server_base import SftpTestServer


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers (no SSH banner)."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as server:
        yield server.getsockname()[1]


def test_a_read_that_does_not_answer_becomes_a_timeout_and_is_not_started_twice() -> None:
    release = threading.Event()
    started = []

    def hangs() -> int:
        started.append(1)
        release.wait(30)
        return 7

    reads = BoundedReads()
    try:
        first = reads.run({"slow": hangs, "fast": lambda: 1}, timeout=0.2)
        assert isinstance(first["slow"], TimeoutError)
        assert first["fast"] == 1
        again = reads.run({"slow": hangs}, timeout=0.2)  # the first read still hangs: joined, not repeated
        assert isinstance(again["slow"], TimeoutError)
        assert len(started) == 1
    finally:
        release.set()
    assert reads.run({"slow": hangs}, timeout=5)["slow"] == 7


def test_a_failing_read_returns_its_exception() -> None:
    def fails() -> int:
        raise PermissionError("denied: /upload/acme/input")

    (result,) = BoundedReads().run({"acme": fails}, timeout=5).values()
    assert isinstance(result, PermissionError)


def test_silent_sftp_server_is_bounded_and_a_real_one_is_counted(
    sftp_server: SftpTestServer,
    sftp_conn_id: str,
    sftp_base: str,
    silent_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    silent = {"conn_type": "sftp", "host": "127.0.0.1", "port": silent_port, "login": "u", "password": "p"}
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_SILENT", json.dumps(silent))
    sftp_server.write(f"{sftp_base}/input/a.pdf")
    results = BoundedReads().run(
        {
            "real": lambda: PooledSFTPHook(ssh_conn_id=sftp_conn_id).project_status(sftp_base),
            "silent": lambda: PooledSFTPHook(ssh_conn_id="outamation_silent").project_status("/x"),
        },
        timeout=2,
    )
    assert isinstance(results["silent"], TimeoutError)
    assert results["real"] == {
        "ready": 1,
        "folders": {},
        "total": {"claimed": 0, "sent": 0, "unsent": 0, "rejected": 0, "completed": 0},
    }


def test_projects_file_is_the_dag_folders_unless_the_environment_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OUTAMATION_PROJECTS_FILE", raising=False)
    assert projects_file(str(tmp_path)) == tmp_path / "outamation_projects.json"
    named = tmp_path / "elsewhere.json"
    monkeypatch.setenv("OUTAMATION_PROJECTS_FILE", str(named))
    assert projects_file(str(tmp_path)) == named


def test_projects_are_read_with_the_seed_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "projects.json"
    entry = {"project_id": "acme", "sftp_conn_id": "s", "document_api_conn_id": "a", "base_path": "/acme"}
    path.write_text(json.dumps([entry, {"project_id": "bad"}]))
    monkeypatch.setenv("PROFILE_CODE", "seed_profile")
    monkeypatch.setenv("SOURCE_FILES", "drop")
    (project,), (invalid,) = read_projects(path)
    assert (project.profile_code, project.source_dir) == ("seed_profile", "drop")
    assert invalid.project_id == "bad"
    path.write_text("{")
    with pytest.raises(ValueError, match=r"projects file .*projects\.json"):
        read_projects(path)


def test_waiting_counts_only_files_that_can_become_ready(
    sftp_server: SftpTestServer,
    sftp_conn_id: str,
    sftp_base: str,
    airflow_db: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.utils.session import create_session

    from airflow_outamation.plugins import status_data

    monkeypatch.setattr(status_data, "FIRST_READ_WAIT", 10.0)  # this view waits for the read: no "counting…"

    for name in ("a.pdf", "B.PDF", "x.part", "~x.pdf", "notes.txt", ".hidden.pdf", "up.pdf.filepart"):
        sftp_server.write(f"{sftp_base}/input/{name}")
    sftp_server.write(f"{sftp_base}/input/empty.pdf", b"")
    sftp_server.makedirs(f"{sftp_base}/input/folder.pdf")
    entry = {"project_id": "waiting", "sftp_conn_id": sftp_conn_id, "document_api_conn_id": "api"}
    project = parse_entry({**entry, "base_path": sftp_base, "profile_code": "p"}, 0)
    assert isinstance(project, Project)

    with create_session() as session:
        (row,) = project_rows(session, [project], [], lambda dag_id: dag_id, timeout=10)

    assert (row.waiting, row.error) == (2, None)


SECRET_URL = "https://probe:hunter2-pass@api.example.com/v1?api_key=Qk7-tok3n-9f8e"


@pytest.fixture
def status_client(
    airflow_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, Path]]:
    """The status app on the real auth manager, an admin's token, and the projects file it reads."""
    from airflow.api_fastapi.app import create_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from airflow_outamation.plugins.status_page import create_app

    path = tmp_path / "projects.json"
    monkeypatch.setenv("OUTAMATION_PROJECTS_FILE", str(path))
    token = create_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="admin"))
    with TestClient(create_app(), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client, path


def test_a_projects_file_caught_mid_edit_is_shown_as_an_error(status_client: tuple[Any, Path]) -> None:
    client, path = status_client
    path.write_text('[{"project_id": "acme",')

    page = client.get("/status")
    data = client.get("/status.json")

    assert (page.status_code, data.status_code) == (200, 200)
    assert f"projects file {path}" in page.text
    assert "Expecting" in page.text
    assert data.json()["rows"] == []
    assert data.json()["error"].startswith(f"projects file {path}")


def test_the_status_of_an_invalid_entry_shows_no_url_credential(airflow_db: str) -> None:
    from airflow.utils.session import create_session

    from airflow_outamation.plugins.status_page import render_page

    entry = {"project_id": "bad", "sftp_conn_id": "s", "document_api_conn_id": "a", "base_path": "/bad"}
    (invalid,) = parse_projects([{**entry, "profile_code": "p", "api_url": SECRET_URL, "batch_size": 0}])[1]

    with create_session() as session:
        (row,) = project_rows(session, [], [invalid], lambda dag_id: dag_id, timeout=10)

    assert "batch_size" in (row.error or "")
    for shown in (json.dumps(row.to_dict()), render_page([row], 10)):
        assert "hunter2-pass" not in shown
        assert "Qk7-tok3n-9f8e" not in shown


def test_a_view_shows_the_counts_read_before_and_refreshes_them_in_the_background(
    asyncssh_server: SftpTestServer, airflow_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from airflow.utils.session import create_session

    from airflow_outamation.plugins import status_data
    from airflow_outamation.testing.pytest_plugin import set_airflow_connection

    monkeypatch.setattr(status_data, "COUNTS", status_data.CachedReads(status_data.READS, ttl=0))
    monkeypatch.setattr(status_data, "FIRST_READ_WAIT", 10.0)  # the first view waits for the read
    conn_id = set_airflow_connection(monkeypatch, "outamation_status_cache", asyncssh_server)
    base = asyncssh_server.remote_path(f"cached-{tmp_path.name}")
    asyncssh_server.write(f"{base}/input/a.pdf")
    entry = {"project_id": "cached", "sftp_conn_id": conn_id, "document_api_conn_id": "api"}
    project = parse_entry({**entry, "base_path": base, "profile_code": "p"}, 0)
    assert isinstance(project, Project)

    def waiting() -> int | None:
        with create_session() as session:
            (row,) = project_rows(session, [project], [], lambda dag_id: dag_id, timeout=10)
        return row.waiting

    assert waiting() == 1
    asyncssh_server.write(f"{base}/input/b.pdf")
    assert waiting() == 1  # what the last read found; the page does not wait for the new read
    for _ in range(100):  # the read started by that view finishes in the background
        if waiting() == 2:
            break
        time.sleep(0.1)
    assert waiting() == 2


def test_reads_of_one_server_are_bounded(airflow_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.utils.session import create_session

    from airflow_outamation.plugins.status_data import READS_PER_SERVER

    accepted: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:  # accepts, never answers
        port = server.getsockname()[1]

        def accept() -> None:
            while True:
                try:
                    accepted.append(server.accept()[0])
                except OSError:
                    return

        threading.Thread(target=accept, daemon=True).start()
        projects = []
        for index in range(3 * READS_PER_SERVER):  # each on a connection id of its own
            silent = {"conn_type": "sftp", "host": "127.0.0.1", "port": port, "login": "u", "password": "p"}
            monkeypatch.setenv(f"AIRFLOW_CONN_OUTAMATION_BOUNDED_{index}", json.dumps(silent))
            entry = {"project_id": f"b{index}", "sftp_conn_id": f"outamation_bounded_{index}"}
            project = parse_entry(
                {**entry, "document_api_conn_id": "a", "base_path": f"/b{index}", "profile_code": "p"}, 0
            )
            assert isinstance(project, Project)
            projects.append(project)

        with create_session() as session:
            rows = project_rows(session, projects, [], lambda dag_id: dag_id, timeout=1)

        assert all("no answer within 1 s" in (row.error or "") for row in rows)
        assert len(accepted) == READS_PER_SERVER
    for connection in accepted:
        connection.close()


def test_a_first_view_shows_folders_still_being_read_as_counting_until_the_timeout(
    airflow_db: str, silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.session import create_session

    from airflow_outamation.plugins import status_data

    monkeypatch.setattr(status_data, "COUNTS", status_data.CachedReads(status_data.READS, ttl=30))
    silent = {"conn_type": "sftp", "host": "127.0.0.1", "port": silent_port, "login": "u", "password": "p"}
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_COUNTING", json.dumps(silent))
    entry = {"project_id": "counting", "sftp_conn_id": "outamation_counting", "document_api_conn_id": "a"}
    project = parse_entry({**entry, "base_path": "/counting", "profile_code": "p"}, 0)
    assert isinstance(project, Project)
    timeout = 4 * status_data.FIRST_READ_WAIT

    def view() -> Any:
        with create_session() as session:
            (row,) = project_rows(session, [project], [], lambda dag_id: dag_id, timeout=timeout)
        return row

    first = view()  # the page does not wait for a folder read it never made before
    assert (first.counting, first.waiting, first.error) == (True, None, None)
    time.sleep(timeout)
    late = view()  # the same read, not a second one: past the timeout it is an error
    assert (late.counting, late.waiting) == (False, None)
    assert f"no answer within {timeout:g} s" in late.error
