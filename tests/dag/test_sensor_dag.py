"""The deferrable ReadyFilesSensor inside a real DAG run (``dag.test()``): defers, resumes, pushes files."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from airflow_outamation.sensors.sftp import ReadyFilesSensor
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.dag_runs import load_dag_in_bundle, xcom_values

DAG_ID = "outamation_test_ready_files_sensor"

DAG_SOURCE = """
from datetime import datetime, timezone

from airflow.sdk import DAG, Param, task

from airflow_outamation.sensors.sftp import ReadyFilesSensor

with DAG(
    "{dag_id}",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    params={{"base": Param("{base}", type="string")}},
) as dag:
    ready = ReadyFilesSensor(
        task_id="wait_for_files",
        sftp_conn_id="{conn_id}",
        directory="{{{{ params.base }}}}/input",
        stability_delay=0.3,{sensor_args}
    )

    @task
    def names(ready):
        return [file["filename"] for file in ready["files"]]

    names(ready.output)
"""


def xcom_return_value(run_id: str, task_id: str) -> Any:
    (value,) = xcom_values(DAG_ID, run_id, task_id)
    return value


@pytest.fixture
def sensor_dag(
    airflow_db: str,
    asyncssh_server: SftpTestServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> tuple[ModuleType, str]:
    """The DAG above in a bundle of its own, watching ``<base>/input`` on the asyncssh server.

    Parametrised indirectly, the parameter is a dict of sensor arguments (name -> source text)
    added to or replacing ``deferrable=True, poke_interval=0.2, timeout=60``.
    """
    base = asyncssh_server.remote_path(f"dag-{tmp_path.name}")
    conn_id = "outamation_dag_sftp"
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", asyncssh_server.connection_json())
    defaults = {"deferrable": "True", "poke_interval": "0.2", "timeout": "60"}
    arguments = {**defaults, **getattr(request, "param", {})}
    sensor_args = "".join(f"\n        {name}={value}," for name, value in arguments.items())
    source = DAG_SOURCE.format(dag_id=DAG_ID, base=base, conn_id=conn_id, sensor_args=sensor_args)
    return load_dag_in_bundle(source, tmp_path / "bundle", monkeypatch), base


def sensor_instance(dag_run: Any) -> Any:
    return next(ti for ti in dag_run.get_task_instances() if ti.task_id == "wait_for_files")


@pytest.mark.slow
@pytest.mark.parametrize("sensor_dag", [{}, {"end_in_triggerer": "True"}], indirect=True)
def test_deferrable_sensor_defers_resumes_and_pushes_files(
    sensor_dag: tuple[ModuleType, str], asyncssh_server: SftpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.trigger import Trigger
    from airflow.utils.session import create_session

    module, base = sensor_dag
    asyncssh_server.makedirs(f"{base}/input")
    asyncssh_server.write(f"{base}/input/partial.pdf.part", b"%PDF")

    defer = ReadyFilesSensor.defer

    def arrive_while_deferring(sensor: ReadyFilesSensor, **kwargs: Any) -> None:
        # The first look found nothing; the files arrive as the sensor hands over to the triggerer.
        asyncssh_server.write(f"{base}/input/one.pdf", b"%PDF one")
        asyncssh_server.write(f"{base}/input/two.pdf", b"%PDF two")
        defer(sensor, **kwargs)

    monkeypatch.setattr(ReadyFilesSensor, "defer", arrive_while_deferring)
    # With end_in_triggerer the trigger ends the task (TaskSuccessEvent); dag.test() resumes it anyway,
    # without the trigger's XCom (Airflow 3.3.2): the sensor looks once more (README).
    dag_run = module.dag.test()

    assert dag_run.state == "success"
    with create_session() as session:  # it deferred: its trigger went through the database
        trigger = session.get(Trigger, sensor_instance(dag_run).trigger_id)
        assert trigger.classpath == "airflow_outamation.triggers.sftp.ReadyFilesTrigger"
        assert trigger.kwargs["directory"] == f"{base}/input"  # rendered template
    files = xcom_return_value(dag_run.run_id, "wait_for_files")["files"]
    assert [(f["path"], f["size"]) for f in files] == [
        (f"{base}/input/one.pdf", 8),
        (f"{base}/input/two.pdf", 8),
    ]
    assert xcom_return_value(dag_run.run_id, "names") == ["one.pdf", "two.pdf"]


@pytest.mark.slow
def test_missing_directory_fails_the_sensor_task(
    sensor_dag: tuple[ModuleType, str], capfd: pytest.CaptureFixture[str]
) -> None:
    module, base = sensor_dag

    dag_run = module.dag.test(run_conf={"base": f"{base}/nowhere"})

    assert dag_run.state == "failed"
    assert sensor_instance(dag_run).state == "failed"
    assert f"SFTPPathError: no such file or directory: {base}/nowhere/input on " in capfd.readouterr().out


def _reschedules(run_id: str | None = None) -> int:
    """How many times this test DAG's sensor gave its worker slot back (in ``run_id``, or in any run)."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    query = (
        select(func.count())
        .select_from(TaskReschedule)
        .join(TaskInstance, TaskInstance.id == TaskReschedule.ti_id)
        .where(TaskInstance.dag_id == DAG_ID, TaskInstance.task_id == "wait_for_files")
    )
    if run_id is not None:
        query = query.where(TaskInstance.run_id == run_id)
    with create_session() as session:
        return int(session.scalar(query) or 0)


@pytest.mark.slow
@pytest.mark.parametrize(
    "sensor_dag",
    # reschedule mode needs whole seconds
    [{"deferrable": "False", "mode": '"reschedule"', "poke_interval": "1"}],
    indirect=True,
)
def test_reschedule_mode_frees_the_slot_and_finds_a_late_file(
    sensor_dag: tuple[ModuleType, str], asyncssh_server: SftpTestServer
) -> None:
    module, base = sensor_dag
    asyncssh_server.makedirs(f"{base}/input")
    before = _reschedules()

    def upload_after_first_reschedule() -> None:
        deadline = time.monotonic() + 120
        while _reschedules() == before and time.monotonic() < deadline:
            time.sleep(0.2)
        asyncssh_server.write(f"{base}/input/late.pdf", b"%PDF late")

    uploader = threading.Thread(target=upload_after_first_reschedule)
    uploader.start()
    try:
        dag_run = module.dag.test()
    finally:
        uploader.join()

    assert dag_run.state == "success"
    assert _reschedules(dag_run.run_id) >= 1  # the sensor gave its slot back before the file came
    ready = xcom_return_value(dag_run.run_id, "wait_for_files")
    assert [f["filename"] for f in ready["files"]] == ["late.pdf"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "sensor_dag",
    [
        pytest.param({"soft_fail": "True", "timeout": "2"}, id="deferrable"),
        pytest.param({"soft_fail": "True", "timeout": "2", "deferrable": "False"}, id="poke"),
    ],
    indirect=True,
)
def test_outage_for_the_whole_wait_fails_the_run_even_with_soft_fail(
    sensor_dag: tuple[ModuleType, str],
    asyncssh_server: SftpTestServer,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    module, _ = sensor_dag
    with socket.socket() as sock:  # a port nothing listens on: the server is down
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    conn = asyncssh_server.connection_dict()
    conn["port"] = closed_port
    monkeypatch.setenv("AIRFLOW_CONN_OUTAMATION_DAG_SFTP", json.dumps(conn))

    dag_run = module.dag.test()

    assert sensor_instance(dag_run).state == "failed"
    assert dag_run.state == "failed"
    output = capfd.readouterr().out
    assert "SFTPConnectError" in output
    assert f"127.0.0.1:{closed_port}" in output
    assert "unreachable for the last" in output


@pytest.mark.slow
@pytest.mark.parametrize("sensor_dag", [{"soft_fail": "True", "timeout": "2"}], indirect=True)
def test_reachable_empty_folder_skips_with_soft_fail(
    sensor_dag: tuple[ModuleType, str], asyncssh_server: SftpTestServer
) -> None:
    module, base = sensor_dag
    asyncssh_server.makedirs(f"{base}/input")

    dag_run = module.dag.test()

    assert sensor_instance(dag_run).state == "skipped"
