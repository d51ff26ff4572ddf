"""The status page's HTML: last run with its time and link, mode and watcher, the whole error, refresh."""

from __future__ import annotations

import re

from airflow_outamation.ingestion_status import LastRun, ProjectRow, failure_reason
from airflow_outamation.plugins.status_page import RunMode, render_page, run_mode
from airflow_outamation.projects import parse_projects

FIX = "move the files (not the .json) back to /upload/acme/input to send them again"
ERROR = "DocumentApiRejectedError: HTTP 422 " + "x" * 400 + f" moved to rejected/12052026; {FIX}"


def _row(project_id: str = "acme", **settings: object) -> ProjectRow:
    return ProjectRow(project_id, f"outamation_sftp_ingest_{project_id}", f"/dags/{project_id}", **settings)  # type: ignore[arg-type]


def test_the_last_run_shows_its_time_and_links_to_the_run() -> None:
    run = LastRun(
        "manual__2026-12-05T15:34:00+00:00", "failed", "2026-12-05T15:34:00+00:00", "submit_batches"
    )
    page = render_page([_row(last_run=run)], 10)
    assert '<a target="_top" href="/dags/acme/runs/manual__2026-12-05T15%3A34%3A00%2B00%3A00">' in page
    assert "2026-12-05 15:34 UTC" in page
    assert '<span class="state failed">failed</span>' in page


def test_the_whole_error_is_on_the_page_and_expands() -> None:
    reason = failure_reason([{"error_detail": [{"exc_type": "X", "exc_value": ERROR}]}])
    assert reason is not None
    assert reason.endswith(FIX)  # not cut mid-word
    run = LastRun("r", "failed", None, "submit_batches", reason)
    page = render_page([_row(last_run=run)], 10)
    (details,) = re.findall(r"<details>.*?</details>", page, re.S)
    assert '<summary><span class="short">submit_batches: X: DocumentApiRejectedError: HTTP 422' in details
    assert FIX in details


def test_mode_and_watcher_say_how_each_project_runs() -> None:
    entry = {"sftp_conn_id": "s", "document_api_conn_id": "a", "profile_code": "p"}
    cron, manual, event = parse_projects(
        [
            {**entry, "project_id": "cron", "base_path": "/c", "schedule": "*/15 * * * *"},
            {**entry, "project_id": "manual", "base_path": "/m", "schedule": None},
            {**entry, "project_id": "event", "base_path": "/e", "schedule": "event"},
        ]
    )[0]
    assert run_mode(cron, paused=False) == RunMode("*/15 * * * *", "")
    assert run_mode(manual, paused=False) == RunMode("manual only", "")
    assert run_mode(event, paused=False) == RunMode("when files are ready", "watching /e/input")
    assert run_mode(event, paused=True) == RunMode("when files are ready (paused)", "not watching: paused")
    page = render_page([_row("event")], 10, modes={"event": run_mode(event, paused=True)})
    assert "<td>when files are ready (paused)</td><td>not watching: paused</td>" in page


def test_the_page_refreshes_itself_and_has_room_for_more_sections() -> None:
    page = render_page([_row()], 10, sections=['<section id="alerts">2 alerts</section>'])
    assert "location.reload()" in page
    assert page.index('<section id="alerts">') < page.index('<table id="projects">')


def test_a_row_still_being_read_says_counting_in_its_counts() -> None:
    page = render_page([_row(counting=True), _row("beta", waiting=3)], 10)
    (counting,) = re.findall(r'<tr data-project="acme">.*?</tr>', page)
    # waiting, too old, claimed today, sent, unsent, rejected
    assert counting.count('<td class="count">counting…</td>') == 6
    assert '<td class="count">3</td>' in page


def test_files_too_old_to_take_have_their_own_column() -> None:
    page = render_page([_row(waiting=1, too_old=2, claimed_today=3)], 10)
    assert "<th>Waiting in input</th><th>Too old (left alone)</th><th>Claimed today</th>" in page
    assert re.search(r'<td class="count">1</td>\s*<td class="count">2</td>\s*<td class="count">3</td>', page)
