"""The status page's reads: bounded in time, never started twice per project, counted on real servers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.plugins.status_data import BoundedReads, projects_file, read_projects
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
