"""Alerts on real Airflow processes: one email when a condition starts, one when it clears, none between."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.pytest_plugin import new_sftp_server
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.testing.smtp_server import SmtpTestServer
from outamation_testbed.airflow_processes import AirflowProcesses, example_dag_home

PROJECTS = ("late", "refused", "busy", "down")
#: ``max_unsent_age`` of project ``busy`` (seconds).
MAX_UNSENT_AGE = 15
#: ``max_unreachable`` of project ``down`` (seconds).
MAX_UNREACHABLE = 20
#: The stopped server's project folder, on its own sshd.
DOWN_BASE = "al-down"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpTestServer]:
    with SmtpTestServer() as server:
        yield server


@pytest.fixture(scope="module")
def down_server() -> Iterator[SftpTestServer]:
    """Project ``down``'s own SFTP server, a real sshd the test stops and starts again."""
    server = new_sftp_server("openssh")
    yield server
    server.close()


@pytest.fixture(scope="module")
def deadline() -> datetime:
    """``expect_files_by`` of project ``late``: the start of a minute 1 to 2 minutes ahead (UTC)."""
    due = (datetime.now(timezone.utc) + timedelta(minutes=2)).replace(second=0, microsecond=0)
    if due.date() != datetime.now(timezone.utc).date():
        pytest.skip("the deadline would fall on the next day (UTC): run again after midnight")
    return due


@pytest.fixture(scope="module")
def airflow(
    asyncssh_server: SftpTestServer,
    receiver: DocumentApiReceiver,
    smtp: SmtpTestServer,
    deadline: datetime,
    down_server: SftpTestServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AirflowProcesses]:
    home = tmp_path_factory.mktemp("airflow-home")
    projects = [
        {
            "project_id": f"al_{name}",
            "sftp_conn_id": "outamation_al_sftp",
            "document_api_conn_id": "outamation_al_api",
            "base_path": asyncssh_server.remote_path(f"al-{home.name}/{name}"),
            "profile_code": f"profile_{name}",
            "uploaded_by": f"al {name}",
            "schedule": "event",
            "poke_interval": 1,
            "stability_delay": 1,
            "alert_targets": {"email": [f"{name}@example.com"]},
            "sweep_interval": None,  # the runs are the tests' own (a sweep would add one at unpausing)
        }
        for name in PROJECTS
    ]
    projects[0]["expect_files_by"] = deadline.strftime("%H:%M")
    projects[2]["max_unsent_age"] = MAX_UNSENT_AGE
    projects[3]["max_unreachable"] = MAX_UNREACHABLE
    projects[3]["sftp_conn_id"] = "outamation_al_down_sftp"
    projects[3]["base_path"] = down_server.remote_path(DOWN_BASE)
    # Manual: its runs resend (and check the alerts) before they wait, so a run checks while the server
    # is down; an event-mode run whose sensor fails skips its housekeeping (the sweep checks then).
    projects[3]["schedule"] = None
    for project, server in zip(projects, (asyncssh_server,) * 3 + (down_server,), strict=True):
        server.makedirs(f"{project['base_path']}/input")
    dags, projects_env = example_dag_home(home, projects)
    env = {
        **projects_env,
        "AIRFLOW_CONN_OUTAMATION_AL_SFTP": asyncssh_server.connection_json(),
        "AIRFLOW_CONN_OUTAMATION_AL_DOWN_SFTP": down_server.connection_json(),
        "AIRFLOW_CONN_OUTAMATION_AL_API": receiver.connection_json(backoff_initial=0.1, backoff_max=1),
        "AIRFLOW_CONN_SMTP_DEFAULT": smtp.connection_json(),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    processes = AirflowProcesses(home, dags, env)
    try:
        processes.start()
        for name in PROJECTS:
            processes.wait_for_dag(f"outamation_sftp_ingest_al_{name}")
        yield processes
    finally:
        processes.stop()


def _subjects(smtp: SmtpTestServer, name: str) -> list[str]:
    return [str(m["Subject"]) for m in smtp.messages if m["To"] == f"{name}@example.com"]


def _run(airflow: AirflowProcesses, name: str) -> None:
    """A manual run of the project (an event-mode DAG's manual run ends at once without files)."""
    dag_id = f"outamation_sftp_ingest_al_{name}"
    run_id = airflow.trigger(dag_id, {})
    airflow.wait_for_run(dag_id, run_id)
    assert airflow.task_states(dag_id, run_id)["check_alerts"] == ["success"]


def _wait(condition: Callable[[], bool], what: str, airflow: AirflowProcesses, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: {airflow.log_tail('scheduler', 4000)}"
        time.sleep(1)


def test_no_file_by_the_deadline_gives_one_late_email_and_one_cleared_email(
    airflow: AirflowProcesses,
    asyncssh_server: SftpTestServer,
    receiver: DocumentApiReceiver,
    smtp: SmtpTestServer,
    deadline: datetime,
) -> None:
    if datetime.now(timezone.utc) < deadline:
        _run(airflow, "late")  # before the deadline: nothing is late
        assert _subjects(smtp, "late") == []
    time.sleep(max((deadline - datetime.now(timezone.utc)).total_seconds() + 1, 0))
    for _ in range(3):  # three runs see the same condition: one message
        _run(airflow, "late")
    late = f"[outamation] al_late: late: no file arrived by {deadline:%H:%M} (UTC)"
    assert _subjects(smtp, "late") == [late]

    inbox = asyncssh_server.remote_path(f"al-{airflow.home.name}/late/input")
    asyncssh_server.write(f"{inbox}/doc.pdf")
    _wait(
        lambda: any(r.valid and r.json()["uploaded_by"] == "al late" for r in receiver.requests),
        "doc.pdf was not sent",
        airflow,
    )
    for _ in range(3):
        _run(airflow, "late")
    assert _subjects(smtp, "late") == [late, late.replace("] ", "] CLEARED ", 1)]
    body = smtp.messages[-1].get_payload()[0].get_payload(decode=True).decode()
    assert "/outamation/status" in body


def test_a_refused_batch_gives_one_email(
    airflow: AirflowProcesses,
    asyncssh_server: SftpTestServer,
    receiver: DocumentApiReceiver,
    smtp: SmtpTestServer,
) -> None:
    receiver.script_for_file("refused.pdf", 400)
    inbox = asyncssh_server.remote_path(f"al-{airflow.home.name}/refused/input")
    asyncssh_server.write(f"{inbox}/refused.pdf")
    _wait(
        lambda: any(r.json().get("uploaded_by") == "al refused" for r in receiver.requests if r.valid),
        "refused.pdf was not sent",
        airflow,
    )
    dag_id = "outamation_sftp_ingest_al_refused"
    _wait(
        lambda: all(
            run["state"] in ("success", "failed")
            for run in airflow.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]
        ),
        "the run sending refused.pdf did not finish",
        airflow,
    )
    for _ in range(3):
        _run(airflow, "refused")
    (subject,) = _subjects(smtp, "refused")
    assert subject.startswith("[outamation] al_refused: rejected: batch msg_")


def test_the_status_page_shows_the_expectations_and_the_open_alert_in_a_browser(
    airflow: AirflowProcesses, chromium: Any, deadline: datetime
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium.get(f"{airflow.base_url}/outamation/status")
    WebDriverWait(chromium, 60).until(lambda b: b.find_elements(By.CSS_SELECTOR, "section.alerts"))
    sections = {
        section.get_attribute("data-project"): section
        for section in chromium.find_elements(By.CSS_SELECTOR, "section.alerts")
    }
    late, refused = sections["al_late"].text, sections["al_refused"].text
    assert f"a file by {deadline:%H:%M} (UTC), every day" in late
    assert "Open alerts" in late
    assert "none" in late  # cleared by the first test
    assert "no batch rejected" in refused
    (alert,) = sections["al_refused"].find_elements(By.CSS_SELECTOR, "li.alert")
    assert alert.text.startswith("rejected: batch msg_")
    bars = sections["al_refused"].find_elements(By.CSS_SELECTOR, "svg.chart rect")
    assert len(bars) == 14 * 3


def test_an_api_answering_503_past_max_unsent_age_gives_one_alert_and_one_clear(
    airflow: AirflowProcesses,
    asyncssh_server: SftpTestServer,
    receiver: DocumentApiReceiver,
    smtp: SmtpTestServer,
) -> None:
    dag_id = "outamation_sftp_ingest_al_busy"
    receiver.script_for_file("busy.pdf", *[503] * 10_000)
    asyncssh_server.write(asyncssh_server.remote_path(f"al-{airflow.home.name}/busy/input/busy.pdf"))
    _wait(lambda: bool(airflow.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"]), "no run started", airflow)
    (first,) = (run["dag_run_id"] for run in airflow.api("GET", f"/dags/{dag_id}/dagRuns")["dag_runs"])
    airflow.wait_for_task_state(dag_id, first, "submit_batches", "up_for_retry")
    airflow.api("PATCH", f"/dags/{dag_id}/dagRuns/{first}", json={"state": "failed"})  # no 2-minute retry
    airflow.wait_for_run(dag_id, first)
    time.sleep(MAX_UNSENT_AGE + 1)

    for _ in range(3):  # each run's resend gets 503 again
        _run(airflow, "busy")
    unsent = f"[outamation] al_busy: unsent: 1 batch(es) not accepted by the API after {MAX_UNSENT_AGE} s"
    assert _subjects(smtp, "busy") == [unsent]
    body = smtp.messages[-1].get_payload()[0].get_payload(decode=True).decode()
    assert "HTTP 503" in body

    receiver.reset()  # the API answers again: the next run's resend sends the batch
    for _ in range(3):
        _run(airflow, "busy")
    assert _subjects(smtp, "busy") == [unsent, unsent.replace("] ", "] CLEARED ", 1)]


def test_an_sftp_server_stopped_past_max_unreachable_gives_one_alert_and_one_cleared_email(
    airflow: AirflowProcesses, down_server: SftpTestServer, smtp: SmtpTestServer
) -> None:
    _run_with_a_file(airflow, down_server)  # reachable: nothing to say
    down_server.stop()
    try:
        _check_while_down(airflow)  # down since now: not yet an alert
        assert _subjects(smtp, "down") == []
        time.sleep(MAX_UNREACHABLE + 1)
        for _ in range(3):
            _check_while_down(airflow)
    finally:
        down_server.start()
    down = "[outamation] al_down: unreachable: the SFTP server cannot be reached"
    assert _subjects(smtp, "down") == [down]
    body = smtp.messages[-1].get_payload()[0].get_payload(decode=True).decode()
    assert "Failing task" in body
    assert "resend_unsent failed: " in body  # the error the run's first task left

    for _ in range(3):
        _run_with_a_file(airflow, down_server)
    assert _subjects(smtp, "down") == [down, down.replace("] ", "] CLEARED ", 1)]


def _run_with_a_file(airflow: AirflowProcesses, server: SftpTestServer) -> None:
    """A manual run of project ``down`` that finds a file to claim and send, so it ends."""
    server.write(f"{server.remote_path(DOWN_BASE)}/input/doc-{time.time_ns()}.pdf", b"%PDF-1.7 down")
    _run(airflow, "down")


def _check_while_down(airflow: AirflowProcesses) -> None:
    """A manual run of project ``down`` until its check is done, then failed: its sensor would retry."""
    dag_id = "outamation_sftp_ingest_al_down"
    run_id = airflow.trigger(dag_id, {})
    airflow.wait_for_task_state(dag_id, run_id, "check_alerts", "success")
    airflow.api("PATCH", f"/dags/{dag_id}/dagRuns/{run_id}", json={"state": "failed"})
    airflow.wait_for_run(dag_id, run_id)
