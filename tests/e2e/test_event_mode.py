"""Event-mode projects on real Airflow processes: runs started by the AssetWatcher of the input folder."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.airflow_processes import AirflowProcesses, example_dag_home

PROJECTS = ("pair", "growing", "claiming", "restart", "manual", "sweep")
#: Seconds without any file during which no run may be created (the idle check).
IDLE_WINDOW = 20
#: The sweep project's ``sweep_interval``; the others have none (their runs are the watcher's only).
SWEEP_INTERVAL = 20

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow(
    asyncssh_server: SftpTestServer, receiver: DocumentApiReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowProcesses]:
    home = tmp_path_factory.mktemp("airflow-home")
    projects = [
        {
            "project_id": f"ev_{name}",
            "sftp_conn_id": "outamation_ev_sftp",
            "document_api_conn_id": "outamation_ev_api",
            "base_path": asyncssh_server.remote_path(f"ev-{home.name}/{name}"),
            "profile_code": f"profile_{name}",
            "uploaded_by": f"ev {name}",
            "schedule": "event",
            "poke_interval": 1,
            "stability_delay": 1,
            "sweep_interval": SWEEP_INTERVAL if name == "sweep" else None,
        }
        for name in PROJECTS
    ]
    for project in projects:
        asyncssh_server.makedirs(f"{project['base_path']}/input")
    dags, projects_env = example_dag_home(home, projects)
    env = {
        **projects_env,
        "AIRFLOW_CONN_OUTAMATION_EV_SFTP": asyncssh_server.connection_json(),
        "AIRFLOW_CONN_OUTAMATION_EV_API": receiver.connection_json(backoff_initial=0.1, backoff_max=1),
        # Watchers of a paused DAG do not run: unpaused from the first parse, they start at once.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    processes = AirflowProcesses(home, dags, env)
    try:
        processes.start()
        for name in PROJECTS:
            processes.wait_for_dag(f"outamation_sftp_ingest_ev_{name}")
        yield processes
    finally:
        processes.stop()


def _input(server: SftpTestServer, name: str, home: Path) -> str:
    return server.remote_path(f"ev-{home.name}/{name}/input")


def _sent(receiver: DocumentApiReceiver, project: str) -> list[str]:
    """File names the API accepted for a project, one per time it was sent."""
    return sorted(
        file["filename"]
        for request in receiver.requests
        if request.valid and request.reply.status < 300 and request.json()["uploaded_by"] == f"ev {project}"
        for file in request.json()["files"]
    )


def _runs(airflow: AirflowProcesses, project: str) -> list[dict[str, Any]]:
    return list(airflow.api("GET", f"/dags/outamation_sftp_ingest_ev_{project}/dagRuns")["dag_runs"])


def _wait(condition: Callable[[], bool], what: str, airflow: AirflowProcesses, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what}: {airflow.log_tail('triggerer', 4000)}"
        time.sleep(1)


def _wait_until_sent(
    airflow: AirflowProcesses, receiver: DocumentApiReceiver, project: str, names: list[str]
) -> None:
    """Wait until every file was sent and every run of the project finished, then check each was sent once."""
    _wait(lambda: set(_sent(receiver, project)) >= set(names), f"{names} not all sent", airflow)
    _wait(
        lambda: all(run["state"] in ("success", "failed") for run in _runs(airflow, project)),
        "runs did not finish",
        airflow,
    )
    assert _sent(receiver, project) == sorted(names)
    assert {run["state"] for run in _runs(airflow, project)} == {"success"}


def test_two_files_a_second_apart_make_one_or_two_runs_then_none_while_idle(
    airflow: AirflowProcesses, asyncssh_server: SftpTestServer, receiver: DocumentApiReceiver
) -> None:
    inbox = _input(asyncssh_server, "pair", airflow.home)
    asyncssh_server.write(f"{inbox}/first.pdf")
    time.sleep(1)
    asyncssh_server.write(f"{inbox}/second.pdf")

    _wait_until_sent(airflow, receiver, "pair", ["first.pdf", "second.pdf"])
    runs = _runs(airflow, "pair")
    assert 1 <= len(runs) <= 2
    assert {run["run_type"] for run in runs} == {"asset_triggered"}

    time.sleep(IDLE_WINDOW)  # the watcher keeps polling an empty folder
    assert len(_runs(airflow, "pair")) == len(runs)


def test_a_file_still_being_written_starts_no_run_until_it_is_stable(
    airflow: AirflowProcesses, asyncssh_server: SftpTestServer, receiver: DocumentApiReceiver
) -> None:
    inbox = _input(asyncssh_server, "growing", airflow.home)
    with asyncssh_server.growing_file(f"{inbox}/big.pdf", interval=0.2):
        for _ in range(10):  # ten polls of the watcher, a second apart
            time.sleep(1)
            assert _runs(airflow, "growing") == []

    _wait_until_sent(airflow, receiver, "growing", ["big.pdf"])
    (log,) = (airflow.home / "logs").glob(
        "dag_id=outamation_sftp_ingest_ev_growing/run_id=*/task_id=wait_for_files/attempt=1.log"
    )
    # The run trusts its event: the file is passed on without a second stability wait.
    assert "The watcher announced 1 file(s)" in log.read_text()


def test_a_file_landing_while_a_run_claims_is_sent_by_a_later_run(
    airflow: AirflowProcesses, asyncssh_server: SftpTestServer, receiver: DocumentApiReceiver
) -> None:
    inbox = _input(asyncssh_server, "claiming", airflow.home)
    asyncssh_server.write(f"{inbox}/early.pdf")
    _wait(lambda: len(_runs(airflow, "claiming")) >= 1, "no run started", airflow)
    dag_id = "outamation_sftp_ingest_ev_claiming"
    first = _runs(airflow, "claiming")[0]["dag_run_id"]
    _wait(
        lambda: (
            set(airflow.task_states(dag_id, first).get("claim_files", [])) & {"running", "success"} != set()
        ),
        "the first run did not claim",
        airflow,
    )
    asyncssh_server.write(f"{inbox}/late.pdf")  # the first run listed its files before claiming

    _wait_until_sent(airflow, receiver, "claiming", ["early.pdf", "late.pdf"])
    xcom = airflow.api(
        "GET", f"/dags/{dag_id}/dagRuns/{first}/taskInstances/claim_files/xcomEntries/return_value"
    )
    claim = json.loads(xcom["value"]) if isinstance(xcom["value"], str) else xcom["value"]
    assert (claim["file_count"], claim["files"]) == (1, ["early.pdf"])  # the claim's summary
    assert len(_runs(airflow, "claiming")) >= 2


def test_a_triggerer_restart_loses_no_file(
    airflow: AirflowProcesses, asyncssh_server: SftpTestServer, receiver: DocumentApiReceiver
) -> None:
    inbox = _input(asyncssh_server, "restart", airflow.home)
    asyncssh_server.write(f"{inbox}/before.pdf")
    _wait_until_sent(airflow, receiver, "restart", ["before.pdf"])

    asyncssh_server.write(f"{inbox}/stopping.pdf")
    while_down = threading.Timer(2.0, asyncssh_server.write, args=(f"{inbox}/while-down.pdf",))
    while_down.start()
    airflow.restart("triggerer")
    while_down.join()
    asyncssh_server.write(f"{inbox}/after.pdf")

    _wait_until_sent(
        airflow, receiver, "restart", ["after.pdf", "before.pdf", "stopping.pdf", "while-down.pdf"]
    )


def test_a_manual_run_of_an_event_mode_dag_claims_what_is_ready_or_ends_at_once(
    airflow: AirflowProcesses, asyncssh_server: SftpTestServer, receiver: DocumentApiReceiver
) -> None:
    dag_id = "outamation_sftp_ingest_ev_manual"
    empty = airflow.trigger(dag_id, {})
    assert airflow.wait_for_run(dag_id, empty) == "success"
    assert airflow.task_states(dag_id, empty)["wait_for_files"] == ["skipped"]
    assert _sent(receiver, "manual") == []


def test_a_batch_left_unsent_is_resent_by_the_sweep_without_new_uploads(
    airflow: AirflowProcesses, asyncssh_server: SftpTestServer, receiver: DocumentApiReceiver
) -> None:
    dag_id = "outamation_sftp_ingest_ev_sweep"
    receiver.script_for_file("unsent.pdf", *[503] * 6)  # every attempt of the first send fails
    asyncssh_server.write(f"{_input(asyncssh_server, 'sweep', airflow.home)}/unsent.pdf")
    _wait(lambda: len(_tries(receiver, "unsent.pdf")) == 6, "the first send did not fail", airflow)

    # No new upload: the next sweep run resends the batch, well before submit_batches' retry (2 min).
    _wait(lambda: _sent(receiver, "sweep") == ["unsent.pdf"], "not resent", airflow, timeout=100)
    assert _sent(receiver, "sweep") == ["unsent.pdf"]
    resent_by = [
        run["dag_run_id"]
        for run in _runs(airflow, "sweep")
        if run["run_type"] == "scheduled"
        and airflow.task_states(dag_id, run["dag_run_id"]).get("resend_unsent") == ["success"]
        and _xcom(airflow, dag_id, run["dag_run_id"], "resend_unsent")["resent"] == 1
    ]
    assert len(resent_by) == 1


def _tries(receiver: DocumentApiReceiver, filename: str) -> list[int]:
    """The statuses the receiver answered to the sends of a file."""
    return [
        request.reply.status
        for request in receiver.requests
        if request.valid and filename in [file["filename"] for file in request.json()["files"]]
    ]


def _xcom(airflow: AirflowProcesses, dag_id: str, run_id: str, task_id: str) -> Any:
    entry = airflow.api(
        "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/return_value"
    )
    return json.loads(entry["value"]) if isinstance(entry["value"], str) else entry["value"]
