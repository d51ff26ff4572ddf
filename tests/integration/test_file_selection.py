"""File selection rules (issue 31) on every real server, through the sync hook and the trigger alike."""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.document_api import SubmitBatchesOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator
from airflow_outamation.plugins.status_data import project_rows
from airflow_outamation.projects import Project, parse_entry
from airflow_outamation.readiness import ReadinessSettings
from airflow_outamation.ready_summary import ready_summary
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.event_loops import run
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.triggers.sftp import ReadyFilesTrigger
from tests.integration.test_ledger_identity import submit_claimed


def claim_context(run_id: str) -> dict[str, Any]:
    """What a claim task reads of its context: the run's date (11262026) and ids."""
    return {
        "logical_date": datetime(2026, 11, 26, tzinfo=timezone.utc),
        "run_id": run_id,
        "dag_run": SimpleNamespace(dag_id="ingest"),
    }


async def ready_event(trigger: ReadyFilesTrigger) -> dict[str, Any]:
    """The trigger's ready event; within 30 s."""
    async with asyncio.timeout(30):
        async for event in trigger.run():
            return event.payload
    raise AssertionError("the trigger ended without an event")


def ready_names(
    sftp_conn_id: str, directory: str, settings: ReadinessSettings
) -> tuple[list[str], list[str]]:
    """The ready files' names as the sync hook (sensor's poke mode) and the trigger (triggerer) find them."""
    by_hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_ready_files(directory, settings=settings)
    event = run(ready_event(ReadyFilesTrigger(sftp_conn_id, directory, poke_interval=0.2, settings=settings)))
    return [file.filename for file in by_hook], [file["filename"] for file in event["files"]]


def test_regex_selects_names_by_full_match(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    for name in ("INV-001.pdf", "INV-002.PDF", "INV-003.pdf.bak", "xINV-004.pdf", "INV-abc.pdf"):
        sftp_server.write(f"{sftp_base}/{name}", b"%PDF " + name.encode())
    settings = ReadinessSettings(regex=r"INV-\d+\.(pdf|PDF)", stability_delay=0.3)

    assert ready_names(sftp_conn_id, sftp_base, settings) == (["INV-001.pdf", "INV-002.PDF"],) * 2


def test_max_age_leaves_older_files_alone(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    for name in ("new.pdf", "old.pdf"):
        sftp_server.write(f"{sftp_base}/{name}", b"%PDF " + name.encode())
    two_hours_ago = time.time() - 7200
    os.utime(sftp_server.local_path(f"{sftp_base}/old.pdf"), (two_hours_ago, two_hours_ago))
    settings = ReadinessSettings(max_age=3600, stability_delay=0.3)

    assert ready_names(sftp_conn_id, sftp_base, settings) == (["new.pdf"], ["new.pdf"])


def test_the_status_reports_files_too_old_to_take(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, airflow_db: str
) -> None:
    from airflow.utils.session import create_session

    for name in ("new.pdf", "old.pdf", "older.pdf"):
        sftp_server.write(f"{sftp_base}/input/{name}")
    for name in ("old.pdf", "older.pdf"):
        os.utime(sftp_server.local_path(f"{sftp_base}/input/{name}"), (time.time() - 7200,) * 2)
    entry = {
        "project_id": "aged",
        "sftp_conn_id": sftp_conn_id,
        "document_api_conn_id": "api",
        "max_age": 3600,
    }
    project = parse_entry({**entry, "base_path": sftp_base, "profile_code": "p"}, 0)
    assert isinstance(project, Project)

    with create_session() as session:
        (row,) = project_rows(session, [project], [], lambda dag_id: dag_id, timeout=10)

    assert (row.waiting, row.too_old, row.error) == (1, 2, None)


def test_a_done_marker_makes_its_file_ready_and_goes_with_its_claim(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    source = f"{sftp_base}/input"
    for name in ("a.pdf", "a.pdf.done", "b.pdf", "c.pdf", "c.pdf.done"):
        sftp_server.write(f"{source}/{name}", b"%PDF " + name.encode())
    hour_ago = time.time() - 3600
    os.utime(sftp_server.local_path(f"{source}/c.pdf.done"), (hour_ago, hour_ago))  # older than c.pdf: stale
    settings = ReadinessSettings(done_marker=".done", stability_delay=0.3)

    assert ready_names(sftp_conn_id, source, settings) == (["a.pdf"], ["a.pdf"])

    claim = ClaimFilesOperator(
        task_id="claim_files",
        sftp_conn_id=sftp_conn_id,
        base_path=sftp_base,
        files=[f"{source}/a.pdf"],
        done_marker=".done",
    )
    context = claim_context("manual__marker")
    (claimed,) = claim.execute(context)
    assert claim.execute(context) == [
        claimed
    ]  # a retried claim is the same and does not fail on the gone marker
    left = sorted(path.name for path in sftp_server.local_path(source).iterdir())
    assert left == ["b.pdf", "c.pdf", "c.pdf.done"]  # the claimed file's marker went with it


def test_max_size_sets_larger_files_aside_unsent_with_a_reason(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    source = f"{sftp_base}/input"
    sftp_server.write(f"{source}/small.pdf", b"%PDF 1")
    sftp_server.write(f"{source}/big.pdf", b"%PDF " + b"x" * 100)
    context = claim_context("manual__size")
    files = [f"{source}/big.pdf", f"{source}/small.pdf"]
    claimed = ClaimFilesOperator(task_id="claim", sftp_conn_id=sftp_conn_id, base_path=sftp_base, files=files)
    submit = SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=claimed.execute(context),
        uploaded_by="tester",
        source="SFTP",
        document_api_conn_id=document_api_conn_id,
        sftp_conn_id=sftp_conn_id,
        max_size=50,
    )

    summary = submit.execute({})
    assert submit.execute({})["sent"] == 0  # a re-run sends nothing and sets nothing aside again

    sent = [f["filename"] for r in document_api_receiver.requests for f in r.json()["files"]]
    assert sent == ["small.pdf"]
    assert (summary["sent"], summary["too_big"]) == (1, 1)
    rejected = sftp_server.local_path(f"{sftp_base}/rejected/11262026")
    assert (rejected / "big.pdf").read_bytes() == b"%PDF " + b"x" * 100  # whole, never half-sent
    (record,) = [json.loads(path.read_text()) for path in rejected.glob("*.json")]
    assert "105 bytes, larger than max_size 50" in record["answer"]


def ready_paths(
    sftp_conn_id: str, directory: str, settings: ReadinessSettings
) -> tuple[list[str], list[str]]:
    """The ready files' paths under ``directory`` as the sync hook and the trigger find them."""
    by_hook = PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_ready_files(directory, settings=settings)
    event = run(ready_event(ReadyFilesTrigger(sftp_conn_id, directory, poke_interval=0.2, settings=settings)))
    under = len(directory) + 1
    return [file.path[under:] for file in by_hook], [file["path"][under:] for file in event["files"]]


def test_recursive_lists_subfolders_but_no_dot_folder_and_no_symlinked_folder(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str
) -> None:
    source = f"{sftp_base}/input"
    for name in ("a.pdf", "sub/b.pdf", "sub/deeper/c.pdf", ".hidden/d.pdf", "sub/e.txt"):
        sftp_server.write(f"{source}/{name}", b"%PDF " + name.encode())
    sftp_server.makedirs(f"{source}/empty")
    os.symlink("..", sftp_server.local_path(f"{source}/sub/loop"))  # followed, it would list input/ again

    nested = ReadinessSettings(recursive=True, stability_delay=0.3)
    assert ready_paths(sftp_conn_id, source, nested) == (["a.pdf", "sub/b.pdf", "sub/deeper/c.pdf"],) * 2
    flat = ReadinessSettings(stability_delay=0.3)
    assert ready_paths(sftp_conn_id, source, flat) == (["a.pdf"], ["a.pdf"])  # the default: input/ alone


def test_recursive_claims_nested_files_flat_each_once_under_distinct_names(
    sftp_server: SftpTestServer,
    sftp_base: str,
    sftp_conn_id: str,
    document_api_receiver: DocumentApiReceiver,
    document_api_conn_id: str,
) -> None:
    source = f"{sftp_base}/input"
    for name in ("a/x.pdf", "b/x.pdf", "b/c/y.pdf", "z.pdf"):
        sftp_server.write(f"{source}/{name}", b"%PDF " + name.encode())
    settings = ReadinessSettings(recursive=True, stability_delay=0.3)
    files = PooledSFTPHook(ssh_conn_id=sftp_conn_id).list_ready_files(source, settings=settings)
    # A sensor's summary listing none of its files: the claim finds them again in its own listing.
    summary = {**ready_summary(source, files, listed=0), "readiness": settings.serialize()}
    context = claim_context("manual__nested")
    claim = ClaimFilesOperator(
        task_id="claim", sftp_conn_id=sftp_conn_id, base_path=sftp_base, files=summary, recursive=True
    )
    claimed = claim.execute(context)
    assert claim.execute(context) == claimed  # a retried claim returns the same files

    target = f"{sftp_base}/in_progress/11262026"
    origins = {file["filename"]: file["source_path"][len(source) + 1 :] for file in claimed}
    assert origins == {"x.pdf": "a/x.pdf", "x (1).pdf": "b/x.pdf", "y.pdf": "b/c/y.pdf", "z.pdf": "z.pdf"}
    for file in claimed:
        kept = sftp_server.local_path(f"{target}/{file['filename']}").read_bytes()
        assert kept == b"%PDF " + origins[file["filename"]].encode()
    left = sorted(
        str(path.relative_to(sftp_server.local_path(source)))
        for path in sftp_server.local_path(source).rglob("*")
    )
    assert left == ["a", "b", "b/c"]  # the customer's folders stay, empty

    submit_claimed(claimed, document_api_conn_id, sftp_conn_id)
    sent = sorted(
        (f["filename"], f.get("stored_name", ""))
        for r in document_api_receiver.requests
        for f in r.json()["files"]
    )
    assert sent == [("x.pdf", ""), ("x.pdf", "x (1).pdf"), ("y.pdf", ""), ("z.pdf", "")]


def test_the_status_counts_waiting_files_in_subfolders_of_a_recursive_project(
    sftp_server: SftpTestServer, sftp_base: str, sftp_conn_id: str, airflow_db: str
) -> None:
    from airflow.utils.session import create_session

    for name in ("a.pdf", "sub/b.pdf", "sub/deeper/c.pdf", ".hidden/d.pdf"):
        sftp_server.write(f"{sftp_base}/input/{name}")
    entry = {"sftp_conn_id": sftp_conn_id, "document_api_conn_id": "api", "base_path": sftp_base}
    rows = []
    for project_id, recursive in (("nested", True), ("flat", False)):
        project = parse_entry(
            {**entry, "project_id": project_id, "profile_code": "p", "recursive": recursive}, 0
        )
        assert isinstance(project, Project)
        with create_session() as session:
            rows += project_rows(session, [project], [], lambda dag_id: dag_id, timeout=10)

    assert [(row.waiting, row.error) for row in rows] == [(3, None), (1, None)]
