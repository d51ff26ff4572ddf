"""
The Airflow UI in headless Chromium on real Airflow processes with a real login.

One Airflow stack for the module: log in through the login page, read the DAG list (an event-mode
project, an invalid entry), read a project's trigger form and see it refuse bad values, trigger a run
from it, read its task logs, open the document API connection form, see a failed run's reason on its
page, and watch the ingestion status page (plugin) count two projects: one with an unsent batch, one
with a failed run. ``OUTAMATION_SCREENSHOT_DIR=docs`` saves the DAG list, the trigger form and the
status page as ``docs/dag-list.png``, ``docs/trigger-form.png`` and ``docs/status-page.png``.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from airflow_outamation.projects import parse_projects
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.airflow_processes import EXAMPLE_DAG, AirflowProcesses, example_dag_home
from outamation_testbed.dag_runs import import_dag_file

USER, PASSWORD = "ops", "not-the-default-password"
#: tour: triggered from the UI; steady: one batch the API keeps failing; broken: refused, run fails;
#: silent: its SFTP server accepts connections and never answers; drop: event mode (watched folder).
PROJECTS = ("tour", "steady", "broken", "silent", "drop")
#: The placeholder DAG of the entry with a typo (index 5 in the projects file).
TYPO_DAG = "outamation_sftp_ingest-invalid-5-typo"
STATUS_TIMEOUT = 3
WAIT = 60  # seconds the browser waits for an element

pytestmark = pytest.mark.slow


def dag_id(project: str) -> str:
    return f"outamation_sftp_ingest_{project}"


@pytest.fixture(scope="module")
def silent_server() -> Iterator[socket.socket]:
    """A TCP port that accepts connections (the kernel's backlog) and never says a word."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server


@pytest.fixture(scope="module")
def projects(
    asyncssh_server: SftpTestServer, tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ui").name
    entries: list[dict[str, Any]] = [
        {
            "project_id": name,
            "sftp_conn_id": "ui_sftp",
            "document_api_conn_id": "ui_api",
            "base_path": asyncssh_server.remote_path(f"{root}/{name}"),
            "profile_code": f"profile_{name}",
            "batch_size": 2,
            "stability_delay": 0.5,
            "poke_interval": 1,
        }
        for name in PROJECTS
    ]
    entries[3].update(sftp_conn_id="ui_silent", base_path="/silent")
    # No sweep: its run at unpause starts tasks while these tests trigger runs, and on this bed's
    # SQLite that contention failed a trigger request ("database is locked", HTTP 500) in CI.
    entries[4].update(schedule="event", poke_interval=5, sweep_interval=None)
    for entry in entries:
        if entry["project_id"] != "silent":
            asyncssh_server.makedirs(f"{entry['base_path']}/input")
    typo = {
        **entries[0],
        "project_id": "typo",
        "base_path": f"{entries[0]['base_path']}-typo",
        "batch_sise": 9,
    }
    return [*entries, typo]


@pytest.fixture(scope="module")
def airflow(
    projects: list[dict[str, Any]],
    asyncssh_server: SftpTestServer,
    receiver: DocumentApiReceiver,
    silent_server: socket.socket,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AirflowProcesses]:
    home = tmp_path_factory.mktemp("airflow-home")
    dags, projects_env = example_dag_home(home, projects)
    silent = {
        "conn_type": "sftp",
        "host": "127.0.0.1",
        "port": silent_server.getsockname()[1],
        "login": "nobody",
        "password": "unused",
        "extra": {"no_host_key_check": True},
    }
    env = {
        **projects_env,
        "AIRFLOW_CONN_UI_SFTP": asyncssh_server.connection_json(),
        "AIRFLOW_CONN_UI_SILENT": json.dumps(silent),
        "AIRFLOW_CONN_UI_API": receiver.connection_json(backoff_initial=0.1, backoff_max=0.2, max_retries=1),
        "AIRFLOW__OUTAMATION__STATUS_PAGE_TIMEOUT": str(STATUS_TIMEOUT),
    }
    processes = AirflowProcesses(home, dags, env, users={USER: PASSWORD})
    try:
        processes.start()
        for name in PROJECTS:
            processes.wait_for_dag(dag_id(name))
        _wait_until(lambda: processes.api("GET", "/dags", params={"tags": "invalid"})["total_entries"])
        yield processes
    finally:
        processes.stop()


def _wait_until(found: Any, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < deadline, f"not there after {timeout} s"
        time.sleep(1)


def _screenshot(browser: Any, name: str) -> None:
    """Save the browser's window as ``<OUTAMATION_SCREENSHOT_DIR>/<name>.png`` when that is set."""
    if screenshots := os.environ.get("OUTAMATION_SCREENSHOT_DIR"):
        Path(screenshots).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(screenshots) / f"{name}.png"))


def _token(airflow: AirflowProcesses) -> str:
    answer = requests.post(
        f"{airflow.base_url}/auth/token", json={"username": USER, "password": PASSWORD}, timeout=10
    )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def _status_rows(airflow: AirflowProcesses) -> dict[str, dict[str, Any]]:
    """The status rows once no row is "counting…" (its first folder read still running)."""
    headers = {"Authorization": f"Bearer {_token(airflow)}"}
    for _ in range(60):
        answer = requests.get(f"{airflow.base_url}/outamation/status.json", headers=headers, timeout=60)
        answer.raise_for_status()
        rows = {row["project_id"]: row for row in answer.json()["rows"]}
        if not any(row["counting"] for row in rows.values()):
            return rows
        time.sleep(1)
    raise AssertionError(f"rows still counting after a minute: {rows}")


def _wait(browser: Any) -> Any:
    """Wait up to WAIT s; an element React re-rendered meanwhile (stale) is looked up again."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT, ignored_exceptions=(StaleElementReferenceException,))


def _log_in(browser: Any, airflow: AirflowProcesses) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{airflow.base_url}/")
    browser.delete_all_cookies()  # the module's tests share one browser: each logs in anew
    browser.get(f"{airflow.base_url}/")
    _wait(browser).until(lambda b: "/auth/login" in b.current_url)
    # The login page's form is rendered by script after the URL changed (it was missing once in CI).
    _wait(browser).until(lambda b: b.find_elements(By.NAME, "username"))
    browser.find_element(By.NAME, "username").send_keys(USER)
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(browser).until(lambda b: "/auth/login" not in b.current_url)


def _button(scope: Any, text: str) -> Any:
    from selenium.webdriver.common.by import By

    buttons = [b for b in scope.find_elements(By.TAG_NAME, "button") if b.text.strip() == text]
    return buttons[-1] if buttons else None


def _open_dialog(browser: Any) -> Any:
    from selenium.webdriver.common.by import By

    return _wait(browser).until(
        lambda b: next(iter(b.find_elements(By.CSS_SELECTOR, "[role=dialog][data-state=open]")), None)
    )


def _dialog_text_once_it_shows(browser: Any, *labels: str) -> str:
    """The open dialog's text once it shows every label, read afresh each time (React re-renders it)."""

    def text_with_labels(b: Any) -> str | None:
        text = str(_open_dialog(b).text)
        return text if all(label in text for label in labels) else None

    return str(_wait(browser).until(text_with_labels))


def test_status_page_refuses_requests_without_a_login(airflow: AirflowProcesses) -> None:
    page = requests.get(f"{airflow.base_url}/outamation/status", allow_redirects=False, timeout=30)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/auth/login?next=")
    assert "<table" not in page.text
    data = requests.get(f"{airflow.base_url}/outamation/status.json", timeout=30)
    assert data.status_code == 401
    forged = requests.get(
        f"{airflow.base_url}/outamation/status.json", headers={"Authorization": "Bearer forged"}, timeout=30
    )
    assert forged.status_code in (401, 403)
    assert "rows" not in forged.text


@pytest.fixture(scope="module")
def tour_run(
    airflow: AirflowProcesses, chromium: Any, projects: list[dict[str, Any]], asyncssh_server: SftpTestServer
) -> dict[str, str]:
    """A finished run of the tour project, triggered from its form in the UI; its id and page."""
    tour = projects[0]
    for i in range(3):  # there before the run: the sensor finds them without deferring
        asyncssh_server.write(f"{tour['base_path']}/input/tour_{i}.pdf", b"%PDF-1.7 tour")
    _log_in(chromium, airflow)
    chromium.get(f"{airflow.base_url}/dags/{dag_id('tour')}")
    _wait(chromium).until(lambda b: _button(b, "Trigger")).click()
    form = _open_dialog(chromium)
    _wait(chromium).until(lambda b: _button(form, "Trigger")).click()
    _wait(chromium).until(lambda b: "/runs/" in b.current_url)
    (run,) = airflow.api("GET", f"/dags/{dag_id('tour')}/dagRuns")["dag_runs"]
    run_id = run["dag_run_id"]
    assert airflow.wait_for_run(dag_id("tour"), run_id) == "success"
    page = f"{airflow.base_url}/dags/{dag_id('tour')}/runs/{quote(run_id, safe='')}"
    return {"run_id": run_id, "page": page, "base_path": tour["base_path"]}


def _task_log(browser: Any, run_page: str, task_id: str, text: str) -> str:
    """The text of a task's page once its log shows ``text``."""
    from selenium.webdriver.common.by import By

    browser.get(f"{run_page}/tasks/{task_id}")
    body = lambda b: b.find_element(By.TAG_NAME, "body").text  # noqa: E731
    _wait(browser).until(lambda b: text in body(b))
    return str(body(browser))


def test_trigger_form_shows_the_params_titles_and_descriptions(
    airflow: AirflowProcesses,
    browser: Any,
    projects: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from selenium.webdriver.common.by import By

    monkeypatch.setenv("OUTAMATION_PROJECTS_FILE", str(airflow.home / "projects.json"))
    example = import_dag_file(EXAMPLE_DAG)
    params = example.project_params(parse_projects([projects[0]])[0][0])
    _log_in(browser, airflow)
    browser.get(f"{airflow.base_url}/dags/{dag_id('tour')}")
    _wait(browser).until(lambda b: _button(b, "Trigger")).click()
    form = _open_dialog(browser)
    _wait(browser).until(lambda b: "Run Parameters" in form.text)
    labels = [label.text.replace("*", "").strip() for label in form.find_elements(By.TAG_NAME, "label")]
    for param in params.values():
        assert param.schema["title"] in labels
        assert param.description in form.text
    values = [field.get_attribute("value") for field in form.find_elements(By.TAG_NAME, "input")]
    assert projects[0]["base_path"] in values  # the entry's folder is the default


def test_triggered_run_logs_its_claim(browser: Any, tour_run: dict[str, str]) -> None:
    log = _task_log(browser, tour_run["page"], "claim_files", "Claimed 3 of 3 file(s)")
    assert f"from {tour_run['base_path']}/input into {tour_run['base_path']}/in_progress/" in log
    assert "Success" in _task_log(browser, tour_run["page"], "submit_batches", "Post Execute")


def test_claim_and_send_logs_name_the_files(browser: Any, tour_run: dict[str, str]) -> None:
    log = _task_log(browser, tour_run["page"], "claim_files", "Claimed 3 of 3 file(s)")
    assert "tour_0.pdf, tour_1.pdf, tour_2.pdf" in log
    log = _task_log(browser, tour_run["page"], "submit_batches", "batch 2/2:")
    assert "batch 1/2: tour_0.pdf … tour_1.pdf (2 files)" in log  # the tour's batch size is 2
    assert "batch 2/2: tour_2.pdf (1 file)" in log


def test_connection_form_of_the_document_api_type(airflow: AirflowProcesses, browser: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    _log_in(browser, airflow)
    browser.get(f"{airflow.base_url}/connections")
    _wait(browser).until(lambda b: _button(b, "Add Connection")).click()
    form = _open_dialog(browser)
    kind = form.find_element(By.CSS_SELECTOR, "input[role=combobox]")
    kind.send_keys("Outamation Document API")
    kind.send_keys(Keys.ENTER)
    # The form re-renders for the chosen type: read the open dialog afresh each time.
    text = _dialog_text_once_it_shows(browser, "API URL", "HMAC secret", "Scheme (when the URL has none)")
    assert "Login" not in text  # hidden for this type
    _wait(browser).until(lambda b: _button(_open_dialog(b), "Extra Fields")).click()
    _dialog_text_once_it_shows(
        browser, "Signature scheme", "Profile code", "Retry count", "Expected content type"
    )


def test_dag_list_shows_how_projects_run_and_why_an_entry_is_invalid(
    airflow: AirflowProcesses, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    _log_in(browser, airflow)
    browser.get(f"{airflow.base_url}/dags")
    shown = (
        "INVALID project entry: typo: unknown key 'batch_sise' (did you mean 'batch_size'?)",
        "Outamation SFTP ingest: drop (runs when files are ready)",
        "Outamation SFTP ingest: tour (manual only)",
    )
    body = lambda b: b.find_element(By.TAG_NAME, "body").text  # noqa: E731
    _wait(browser).until(lambda b: all(text in body(b) for text in shown))
    _screenshot(browser, "dag-list")


def _trigger_form_with(browser: Any, airflow: AirflowProcesses, name: str, value: str) -> Any:
    """The tour's trigger form with param ``name`` typed in as ``value`` (left as typed: not clamped)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{airflow.base_url}/dags/{dag_id('tour')}")
    _wait(browser).until(lambda b: _button(b, "Trigger")).click()
    form = _open_dialog(browser)
    field = _wait(browser).until(lambda b: next(iter(form.find_elements(By.NAME, f"element_{name}")), None))
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(value, Keys.TAB)
    assert field.get_attribute("value") == value
    return form


@pytest.mark.parametrize(
    ("name", "value", "refusal"),
    [("batch_size", "0", "0 is less than the minimum of 1"), ("base_path", "/etc", "'/etc' does not match")],
)
def test_trigger_form_refuses_what_the_run_would_refuse(
    airflow: AirflowProcesses, browser: Any, tour_run: dict[str, str], name: str, value: str, refusal: str
) -> None:
    from selenium.webdriver.common.by import By

    runs = airflow.api("GET", f"/dags/{dag_id('tour')}/dagRuns")["total_entries"]
    _log_in(browser, airflow)
    form = _trigger_form_with(browser, airflow, name, value)
    _wait(browser).until(lambda b: _button(form, "Trigger")).click()
    _dialog_text_once_it_shows(browser, f"param {name}", refusal)
    if name == "base_path":
        message = browser.find_element(By.XPATH, "//*[contains(text(), 'Invalid input for param')]")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", message)
        _screenshot(browser, "trigger-form")
    assert airflow.api("GET", f"/dags/{dag_id('tour')}/dagRuns")["total_entries"] == runs


@pytest.fixture(scope="module")
def failed_runs(
    airflow: AirflowProcesses,
    projects: list[dict[str, Any]],
    asyncssh_server: SftpTestServer,
    receiver: DocumentApiReceiver,
) -> dict[str, str]:
    """steady: a batch the API keeps failing (run still retrying); broken: a batch refused, run failed."""
    bases = {entry["project_id"]: entry.get("base_path") for entry in projects}
    receiver.script_for_file("steady_0.pdf", *[503] * 100)  # its batch stays unsent, whatever the retries
    receiver.script_for_file("broken_0.pdf", 422)  # refused for good: rejected, the run fails
    for name, count in (("steady", 3), ("broken", 2)):
        for i in range(count):
            asyncssh_server.write(f"{bases[name]}/input/{name}_{i}.pdf", b"%PDF-1.7 " + name.encode())
    runs = {name: airflow.trigger(dag_id(name), {}) for name in ("steady", "broken")}
    assert airflow.wait_for_run(dag_id("broken"), runs["broken"]) == "failed"
    airflow.wait_for_task_state(dag_id("steady"), runs["steady"], "submit_batches", "up_for_retry")
    return runs


def test_a_failed_runs_reason_shows_on_its_page(
    airflow: AirflowProcesses, browser: Any, failed_runs: dict[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    page = f"{airflow.base_url}/dags/{dag_id('broken')}/runs/{quote(failed_runs['broken'], safe='')}"
    _log_in(browser, airflow)
    browser.get(page)
    body = lambda b: b.find_element(By.TAG_NAME, "body").text  # noqa: E731
    # The run's note (written when the run failed): each failed task, its error and the fix.
    _wait(browser).until(lambda b: "submit_batches failed: DocumentApiRejectedError" in body(b))
    assert "back to the input folder to send them again" in body(browser)


def test_status_page_counts_an_unsent_batch_and_shows_a_failed_run(
    airflow: AirflowProcesses, browser: Any, projects: list[dict[str, Any]], failed_runs: dict[str, str]
) -> None:
    from selenium.webdriver.common.by import By

    bases = {entry["project_id"]: entry.get("base_path") for entry in projects}
    rows = _status_rows(airflow)
    steady, broken, silent = rows["steady"], rows["broken"], rows["silent"]
    assert (steady["waiting"], steady["claimed_today"], steady["sent"], steady["unsent"]) == (0, 3, 1, 2)
    assert steady["rejected"] == 0
    assert steady["last_run"]["state"] == "running"
    assert steady["error"] is None
    assert (broken["waiting"], broken["claimed_today"], broken["sent"], broken["unsent"]) == (0, 2, 0, 0)
    assert broken["rejected"] == 2
    assert broken["last_run"]["state"] == "failed"
    assert broken["last_run"]["failed_task"] == "submit_batches"
    assert "DocumentApiRejectedError" in broken["last_run"]["error"]
    assert "422" in broken["last_run"]["error"]
    assert silent["claimed_today"] is None
    assert f"no answer within {STATUS_TIMEOUT} s" in silent["error"]

    _log_in(browser, airflow)
    browser.get(f"{airflow.base_url}/")
    _wait(browser).until(lambda b: _button(b, "Browse")).click()
    _wait(browser).until(
        lambda b: next(iter(b.find_elements(By.XPATH, "//*[normalize-space()='Ingestion status']")), None)
    ).click()
    frame = _wait(browser).until(lambda b: next(iter(b.find_elements(By.TAG_NAME, "iframe")), None))
    assert frame.get_attribute("src").endswith("/outamation/status")
    browser.switch_to.frame(frame)
    try:
        table = _wait(browser).until(lambda b: next(iter(b.find_elements(By.ID, "projects")), None))
        cells = {
            row.get_attribute("data-project"): [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in table.find_elements(By.CSS_SELECTOR, "tbody tr")
        }
        # Project, Runs, Watcher, Waiting, Too old, Claimed today, Sent, Unsent, Rejected, Last run, Error
        assert cells["steady"][1:9] == ["manual only", "", "0", "0", "3", "1", "2", "0"]
        assert cells["steady"][9].startswith("running 20")
        assert cells["broken"][3:9] == ["0", "0", "2", "0", "0", "2"]
        assert cells["broken"][9].startswith("failed 20")
        assert cells["broken"][9].endswith(" UTC")
        assert cells["broken"][10].startswith("submit_batches: DocumentApiRejectedError")
        assert cells["drop"][1:3] == ["when files are ready", f"watching {bases['drop']}/input"]
        assert "no answer within" in cells["silent"][10]
        broken = table.find_element(By.CSS_SELECTOR, "tr[data-project=broken]")
        link = broken.find_element(By.LINK_TEXT, "broken")
        assert link.get_attribute("href").endswith(f"/dags/{dag_id('broken')}")
        run_link = broken.find_element(By.CSS_SELECTOR, "td:nth-child(10) a")
        run_page = f"/dags/{dag_id('broken')}/runs/{quote(failed_runs['broken'], safe='')}"
        assert run_link.get_attribute("href").endswith(run_page)
        error = broken.find_element(By.TAG_NAME, "details")
        error.find_element(By.TAG_NAME, "summary").click()  # expands: the whole error, the fix included
        assert "back to the input folder to send them again" in error.text
    finally:
        browser.switch_to.default_content()
    _screenshot(browser, "status-page")
