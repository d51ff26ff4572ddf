"""The example DAG on real Airflow processes: triggered through the REST API, deferred into the triggerer."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.airflow_processes import AirflowProcesses, example_dag_home

PROJECTS = ("alpha", "beta")
#: A DAG of another team, scheduled on alpha's claims: it returns the file names of its asset events.
DOWNSTREAM_DAG = """
from datetime import datetime, timezone

from airflow.sdk import DAG, task

from airflow_outamation.assets import in_progress_asset

ALPHA = in_progress_asset("e2e_alpha")

with DAG(
    "e2e_downstream", schedule=[ALPHA], start_date=datetime(2026, 1, 1, tzinfo=timezone.utc), catchup=False
):

    @task
    def claimed_names(triggering_asset_events=None):
        return [name for event in triggering_asset_events[ALPHA] for name in event.extra["files"]]

    claimed_names()
"""
FILES_PER_PROJECT = {"alpha": 5, "beta": 3}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def airflow(
    asyncssh_server: SftpTestServer, receiver: DocumentApiReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AirflowProcesses]:
    home = tmp_path_factory.mktemp("airflow-home")
    projects = [
        {
            "project_id": f"e2e_{name}",
            "sftp_conn_id": "outamation_e2e_sftp",
            "document_api_conn_id": "outamation_e2e_api",
            "base_path": asyncssh_server.remote_path(f"e2e-{home.name}/{name}"),
            "profile_code": f"profile_{name}",
            "poke_interval": 1,
        }
        for name in PROJECTS
    ]
    dags, projects_env = example_dag_home(home, projects)
    (dags / "e2e_downstream.py").write_text(DOWNSTREAM_DAG)
    env = {
        **projects_env,
        "AIRFLOW_CONN_OUTAMATION_E2E_SFTP": asyncssh_server.connection_json(),
        "AIRFLOW_CONN_OUTAMATION_E2E_API": receiver.connection_json(backoff_initial=0.1, backoff_max=1),
    }
    processes = AirflowProcesses(home, dags, env)
    try:
        processes.start()
        yield processes
    finally:
        processes.stop()


def test_two_projects_run_through_the_real_scheduler_and_triggerer(
    airflow: AirflowProcesses, asyncssh_server: SftpTestServer, receiver: DocumentApiReceiver
) -> None:
    airflow.wait_for_dag("e2e_downstream")
    bases = {}
    for name in PROJECTS:
        dag_id = f"outamation_sftp_ingest_e2e_{name}"
        airflow.wait_for_dag(dag_id)
        bases[name] = airflow.api("GET", f"/dags/{dag_id}/details")["params"]["base_path"]["value"]
        asyncssh_server.makedirs(f"{bases[name]}/input")
    runs = {
        name: airflow.trigger(
            f"outamation_sftp_ingest_e2e_{name}",
            {"batch_size": 2, "stability_delay": 0.5, "uploaded_by": f"e2e {name}"},
        )
        for name in PROJECTS
    }
    # Both sensors wait in the one triggerer before the files arrive. Airflow 3.3.2's scheduler fails
    # a task that resumes before it has processed the executor event of its deferral (same try
    # number; seen with a 5 s lag on 2 busy cores), so the files arrive once that event is processed.
    for name, run_id in runs.items():
        dag_id = f"outamation_sftp_ingest_e2e_{name}"
        airflow.wait_for_task_state(dag_id, run_id, "wait_for_files", "deferred")
        airflow.wait_for_log(
            "scheduler",
            "Received executor event with state success for task instance "
            f"TaskInstanceKey(dag_id='{dag_id}', task_id='wait_for_files', run_id='{run_id}'",
        )
    for name in PROJECTS:
        for i in range(FILES_PER_PROJECT[name]):
            asyncssh_server.write(f"{bases[name]}/input/{name}_{i}.pdf", b"%PDF-1.7 " + name.encode())

    for name, run_id in runs.items():
        dag_id = f"outamation_sftp_ingest_e2e_{name}"
        state = airflow.wait_for_run(dag_id, run_id, timeout=240)
        assert state == "success", (airflow.task_states(dag_id, run_id), airflow.log_tail("scheduler", 6000))
        states = airflow.task_states(dag_id, run_id)
        assert states["wait_for_files"] == ["success"]
        assert states["submit_batches"] == ["success"]
        # The sensor ended in the triggerer (end_from_trigger): a worker ran it once, to defer, not again.
        executor_events = airflow.log_tail("scheduler", chars=10**7).count(
            "Received executor event with state success for task instance "
            f"TaskInstanceKey(dag_id='{dag_id}', task_id='wait_for_files', run_id='{run_id}'"
        )
        assert executor_events == 1

    for name in PROJECTS:  # each sensor waited in the one triggerer, which found the files
        trigger_logs = list(
            (airflow.home / "logs").glob(f"dag_id=*{name}/run_id=*/task_id=wait_for_files/*.trigger.*")
        )
        assert len(trigger_logs) == 1
        assert f"{FILES_PER_PROJECT[name]} ready file(s)" in trigger_logs[0].read_text()
    requests = receiver.requests
    assert all(r.valid for r in requests)
    for name in PROJECTS:
        payloads = [r.json() for r in requests if r.json()["uploaded_by"] == f"e2e {name}"]
        expected_batches = -(-FILES_PER_PROJECT[name] // 2)
        assert len(payloads) == expected_batches
        assert {p["profile_code"] for p in payloads} == {f"profile_{name}"}
        assert sorted(f["filename"] for p in payloads for f in p["files"]) == [
            f"{name}_{i}.pdf" for i in range(FILES_PER_PROJECT[name])
        ]
        assert os.listdir(asyncssh_server.local_path(f"{bases[name]}/input")) == []

    deadline = time.monotonic() + 120  # the scheduler creates the asset-triggered run on a later loop
    while not (downstream := airflow.api("GET", "/dags/e2e_downstream/dagRuns")["dag_runs"]):
        assert time.monotonic() < deadline, airflow.log_tail("scheduler", 6000)
        time.sleep(1)
    (run,) = downstream
    assert airflow.wait_for_run("e2e_downstream", run["dag_run_id"]) == "success"
    xcom = airflow.api(
        "GET",
        f"/dags/e2e_downstream/dagRuns/{run['dag_run_id']}/taskInstances/claimed_names/xcomEntries/return_value",
    )
    names = json.loads(xcom["value"]) if isinstance(xcom["value"], str) else xcom["value"]
    assert sorted(names) == [f"alpha_{i}.pdf" for i in range(FILES_PER_PROJECT["alpha"])]
