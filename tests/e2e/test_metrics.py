"""A real DAG run on real Airflow processes: metrics reach StatsD as ``[metrics]`` says, logs name files."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from airflow_outamation import metrics
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.airflow_processes import AirflowProcesses, example_dag_home

PROJECT = "metrics"
DAG_ID = f"outamation_sftp_ingest_{PROJECT}"
FILES = 7
REFUSED = "doc6.pdf"  # alone in the last batch of 3 + 3 + 1

pytestmark = pytest.mark.slow


class StatsdListener:
    """A UDP socket on 127.0.0.1 collecting StatsD lines (``name:value|type``) from a background thread."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                packet = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines += packet.decode("utf-8", "replace").splitlines()

    def values(self, name: str, kind: str) -> list[float]:
        """The values received for ``name`` with StatsD type ``kind`` (``c``, ``ms``)."""
        found = []
        for line in list(self.lines):
            stat, _, rest = line.partition(":")
            value, _, rest = rest.partition("|")
            if stat == name and rest.split("|")[0] == kind:
                found.append(float(value))
        return found

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture(scope="module")
def statsd() -> Iterator[StatsdListener]:
    listener = StatsdListener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def airflow(
    asyncssh_server: SftpTestServer,
    receiver: DocumentApiReceiver,
    statsd: StatsdListener,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[AirflowProcesses]:
    home = tmp_path_factory.mktemp("airflow-home")
    project = {
        "project_id": PROJECT,
        "sftp_conn_id": "outamation_metrics_sftp",
        "document_api_conn_id": "outamation_metrics_api",
        "base_path": asyncssh_server.remote_path(f"metrics-{home.name}"),
        "profile_code": "intake",
        "poke_interval": 1,
    }
    dags, projects_env = example_dag_home(home, [project])
    env = {
        **projects_env,
        "AIRFLOW_CONN_OUTAMATION_METRICS_SFTP": asyncssh_server.connection_json(),
        "AIRFLOW_CONN_OUTAMATION_METRICS_API": receiver.connection_json(backoff_initial=0.1, backoff_max=1),
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    }
    processes = AirflowProcesses(home, dags, env)
    try:
        processes.start()
        yield processes
    finally:
        processes.stop()


def test_a_run_sends_metrics_per_project_and_logs_file_names(
    airflow: AirflowProcesses,
    asyncssh_server: SftpTestServer,
    receiver: DocumentApiReceiver,
    statsd: StatsdListener,
) -> None:
    airflow.wait_for_dag(DAG_ID)
    base = airflow.api("GET", f"/dags/{DAG_ID}/details")["params"]["base_path"]["value"]
    for i in range(FILES):  # already there: the sensor's first look passes them on, no deferral
        asyncssh_server.write(f"{base}/input/doc{i}.pdf", b"%PDF-1.7 " + bytes([i]) * 50)
    receiver.script_for_file(REFUSED, 422)  # refused for good: its batch goes to rejected/

    run_id = airflow.trigger(DAG_ID, {"batch_size": 3, "stability_delay": 0.5})
    state = airflow.wait_for_run(DAG_ID, run_id, timeout=300)

    assert state == "failed"  # check_run fails the run because a batch was refused
    states = airflow.task_states(DAG_ID, run_id)
    assert states["claim_files"] == ["success"]
    assert states["submit_batches"] == ["failed"]

    def counted(name: str) -> float:
        tagged = sum(statsd.values(f"airflow.{name}", "c"))
        per_project = sum(statsd.values(f"airflow.{metrics.per_project_name(name, DAG_ID)}", "c"))
        assert tagged == per_project, (name, statsd.lines)  # plain StatsD drops the tag: both names
        return tagged

    assert counted(metrics.FILES_READY) == FILES
    assert counted(metrics.FILES_CLAIMED) == FILES
    assert counted(metrics.FILES_SENT) == FILES - 1
    assert counted(metrics.FILES_FAILED) == 1
    assert counted(metrics.FILES_REJECTED) == 1
    (claim_ms,) = statsd.values(f"airflow.{metrics.CLAIM_DURATION}", "ms")
    assert claim_ms > 0
    api_calls = statsd.values(f"airflow.{metrics.API_CALL_DURATION}", "ms")
    assert len(api_calls) == len(receiver.requests) == 3  # one per request, the refused one included
    sends = statsd.values(f"airflow.{metrics.SEND_DURATION}", "ms")
    assert len(sends) == 2  # resend_unsent and submit_batches
    assert all(ms > 0 for ms in api_calls + sends)

    def task_log(task_id: str) -> str:
        (path,) = (airflow.home / "logs").glob(f"dag_id={DAG_ID}/run_id=*/task_id={task_id}/attempt=1.log")
        return path.read_text()

    claim_log = task_log("claim_files")
    assert all(f"doc{i}.pdf" in claim_log for i in range(FILES)), claim_log
    submit_log = task_log("submit_batches")
    for number, names in enumerate(
        (["doc0.pdf", "doc1.pdf", "doc2.pdf"], ["doc3.pdf", "doc4.pdf", "doc5.pdf"]), 1
    ):
        assert f"batch {number}/3: {names[0]}" in submit_log, submit_log
        assert f"(3 files): {', '.join(names)}" in submit_log
    assert f"batch 3/3: {REFUSED} (1 file): {REFUSED}" in submit_log
