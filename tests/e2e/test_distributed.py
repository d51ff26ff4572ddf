"""
The example DAG scaled out: PostgreSQL, Redis, CeleryExecutor with two workers, two triggerers.

One test bed (module fixture) serves every test: 20 projects, half on OpenSSH sshd, half on the
asyncssh server, one SFTP connection per server. Each test puts its own files (names prefixed with
the test's tag, ``uploaded_by`` = the tag) and checks that every file reached the document API under
exactly one message id and was accepted, whatever fault it injected.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psutil
import pytest

from airflow_outamation.hooks.sftp_pool import DEFAULT_POOL_SIZE
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver, Reply
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.airflow_processes import AirflowProcesses
from outamation_testbed.many_projects import ManyProjects, many_projects, process_tree
from outamation_testbed.postgres_server import PostgresServer, postgres_available
from outamation_testbed.redis_server import RedisServer, redis_available

PROJECTS = 20
FILES_PER_PROJECT = 50
WORKERS = 2
WORKER_CONCURRENCY = 4  # AirflowProcesses' [celery] worker_concurrency
TRIGGERERS = 2
#: Test-bed cluster policy: retries keep their number but wait 5 s at most (the DAG's submit task
#: waits 2 min, then 4 min, for an API outage to pass), so a fault test does not wait for minutes.
LOCAL_SETTINGS = """
from datetime import timedelta


def task_policy(task):
    task.max_retry_delay = timedelta(seconds=5)
"""

pytestmark = [pytest.mark.slow, pytest.mark.sshd, pytest.mark.timeout(900)]


@dataclass
class Bed:
    """The running test bed and its projects."""

    airflow: AirflowProcesses
    redis: RedisServer
    postgres: PostgresServer
    receiver: DocumentApiReceiver
    projects: ManyProjects

    @property
    def bases(self) -> dict[str, tuple[str, str]]:
        return self.projects.bases

    @property
    def servers(self) -> dict[str, SftpTestServer]:
        return self.projects.servers

    dag_id = staticmethod(ManyProjects.dag_id)

    def put_files(self, tag: str, projects: list[str] | None = None) -> dict[str, set[str]]:
        """Write 50 ready PDFs into each project's input folder; return project -> file names."""
        return self.projects.put_files(tag, FILES_PER_PROJECT, projects)

    def trigger_all(self, tag: str, projects: list[str] | None = None) -> dict[str, str]:
        """Trigger a run of each project through the REST API; return project -> run id."""
        conf = {"batch_size": 5, "stability_delay": 0.5, "uploaded_by": tag}
        return {p: self.airflow.trigger(self.dag_id(p), conf) for p in projects or list(self.bases)}

    def wait_all(self, runs: dict[str, str]) -> None:
        """Wait until every run finished and assert that each succeeded."""
        for project, run_id in runs.items():
            state = self.airflow.wait_for_run(self.dag_id(project), run_id, timeout=900)
            assert state == "success", (project, self.airflow.task_states(self.dag_id(project), run_id))

    def assert_sent_exactly_once(self, tag: str, names: dict[str, set[str]]) -> Counter[str]:
        """
        Every file of ``tag`` was accepted under exactly one message id, its batch's, and left input/.

        :return: how many accepted requests each message id got (more than one: a resend, same id)
        """
        accepted = [r for r in self.receiver.requests if r.valid and r.reply.status == 200]
        ids_per_file: dict[str, set[str]] = {}
        answers: Counter[str] = Counter()
        for request in accepted:
            payload = request.json()
            if payload["uploaded_by"] != tag:
                continue
            answers[str(request.message_id)] += 1
            for item in payload["files"]:
                ids_per_file.setdefault(item["filename"], set()).add(str(request.message_id))
        expected = set().union(*names.values())
        assert set(ids_per_file) == expected
        assert {name: len(ids) for name, ids in ids_per_file.items() if len(ids) != 1} == {}
        for project in names:
            kind, base = self.bases[project]
            assert list(self.servers[kind].local_path(f"{base}/input").iterdir()) == []
        return answers


class ConnectionSampler:
    """Samples a server's open SSH connections every 0.1 s in a thread; ``peak`` is the most seen."""

    def __init__(self, server: SftpTestServer) -> None:
        self.server = server
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.server.connections_active())

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def bed(
    openssh_server: SftpTestServer,
    asyncssh_server: SftpTestServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Bed]:
    if not (postgres_available() and redis_available()):
        message = "PostgreSQL or Redis is not installed (apt-get install postgresql redis-server)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message}; CI=true requires the distributed tests to run")
        pytest.skip(message)
    home = tmp_path_factory.mktemp("airflow-celery-home")
    (home / "config").mkdir()
    (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
    servers = {"openssh": openssh_server, "asyncssh": asyncssh_server}
    with DocumentApiReceiver() as receiver, PostgresServer() as postgres, RedisServer() as redis:
        projects = many_projects(home, servers, receiver, PROJECTS)
        env = {
            **projects.env,
            "AIRFLOW__CORE__PARALLELISM": "32",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "16",
        }
        airflow = AirflowProcesses(
            home,
            projects.dags,
            env,
            executor="CeleryExecutor",
            database_url=postgres.url,
            broker_url=redis.url,
            celery_workers=WORKERS,
            triggerers=TRIGGERERS,
        )
        try:
            airflow.start(timeout=400)
            for project in projects.bases:
                airflow.wait_for_dag(projects.dag_id(project), timeout=300)
            yield Bed(airflow, redis, postgres, receiver, projects)
        finally:
            airflow.stop()


def _listening(pids: set[int]) -> set[str]:
    """The addresses (``host:port``) on which the given processes listen for TCP connections."""
    return {
        f"{c.laddr.ip}:{c.laddr.port}"
        for c in psutil.net_connections("tcp")
        if c.status == psutil.CONN_LISTEN and c.pid in pids
    }


def test_every_component_runs_and_listens_on_loopback_only(bed: Bed) -> None:
    assert set(bed.airflow.components) == {
        "api-server",
        "scheduler",
        "dag-processor",
        "triggerer-1",
        "triggerer-2",
        "celery-worker-1",
        "celery-worker-2",
    }
    pids: set[int] = set()
    for process in bed.airflow._processes.values():
        pids |= process_tree(process.pid)
    postgres_pid = int((bed.postgres.data_dir / "postmaster.pid").read_text().split()[0])
    redis_pid = bed.redis._process.pid if bed.redis._process else 0
    pids |= process_tree(postgres_pid) | {redis_pid}
    local = _listening(pids)
    assert f"127.0.0.1:{bed.airflow.port}" in local
    assert f"127.0.0.1:{bed.postgres.port}" in local
    assert f"127.0.0.1:{bed.redis.port}" in local
    assert [address for address in local if not address.startswith("127.0.0.1:")] == []
    triggerer_jobs = bed.airflow.api("GET", "/jobs?job_type=TriggererJob&is_alive=true")["jobs"]
    assert len(triggerer_jobs) == TRIGGERERS


def test_twenty_projects_on_two_servers_send_every_file_once(bed: Bed) -> None:
    tag = "plain"
    opened_before = {kind: server.connections_opened() for kind, server in bed.servers.items()}
    names = bed.put_files(tag)
    started = time.monotonic()
    with (
        ConnectionSampler(bed.servers["openssh"]) as openssh,
        ConnectionSampler(bed.servers["asyncssh"]) as asy,
    ):
        runs = bed.trigger_all(tag)
        bed.wait_all(runs)
    elapsed = time.monotonic() - started
    answers = bed.assert_sent_exactly_once(tag, names)
    assert set(answers.values()) == {1}  # no fault: not even a resend under the same id
    assert len(answers) == PROJECTS * FILES_PER_PROJECT // 5
    # Connections: each task process has its own pools (SFTP and transfers, DEFAULT_POOL_SIZE each per
    # connection id), each triggerer one async pool; at most WORKERS * WORKER_CONCURRENCY tasks run
    # at once. Every server is one connection id here.
    peak_bound = WORKERS * WORKER_CONCURRENCY * 2 * DEFAULT_POOL_SIZE + TRIGGERERS * DEFAULT_POOL_SIZE
    opened = {kind: server.connections_opened() - opened_before[kind] for kind, server in bed.servers.items()}
    peaks = {"openssh": openssh.peak, "asyncssh": asy.peak}
    # resend_unsent, wait_for_files, claim_files, submit_batches, project_status: 5 SFTP tasks a run
    tasks_per_server = PROJECTS // 2 * 5
    print(f"\n{PROJECTS}x{FILES_PER_PROJECT} files in {elapsed:.1f} s; SSH opened {opened}, peak {peaks}")
    for kind in bed.servers:
        assert 0 < peaks[kind] <= peak_bound
        assert opened[kind] <= tasks_per_server * 2 * DEFAULT_POOL_SIZE + TRIGGERERS * DEFAULT_POOL_SIZE


def _task_instances(bed: Bed, project: str, run_id: str) -> list[dict[str, Any]]:
    return bed.airflow.api("GET", f"/dags/{bed.dag_id(project)}/dagRuns/{run_id}/taskInstances")[
        "task_instances"
    ]


def _wait_until(condition: Callable[[], Any], what: str, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    raise TimeoutError(f"{what} not within {timeout:g} s")


def test_a_worker_killed_while_sending_batches_loses_and_duplicates_nothing(bed: Bed) -> None:
    tag = "workerkill"
    projects = list(bed.bases)[:6]
    names = bed.put_files(tag, projects)
    # A slow API: each answer takes 3 s, so the sends are still running when the worker dies.
    bed.receiver.script(*[Reply(delay=3.0)] * (len(projects) * FILES_PER_PROJECT // 5))
    runs = bed.trigger_all(tag, projects)
    alive = [name for name in bed.airflow.components if name.startswith("celery-worker-")]

    def sending_worker() -> str | None:
        """The worker running a submit_batches whose batches the API has begun to receive."""
        if not any(r.json()["uploaded_by"] == tag for r in bed.receiver.requests):
            return None
        for project, run_id in runs.items():
            for ti in _task_instances(bed, project, run_id):
                if ti["task_id"] == "submit_batches" and ti["state"] == "running" and ti["pid"]:
                    for worker in alive:
                        if ti["pid"] in process_tree(bed.airflow._processes[worker].pid):
                            return worker
        return None

    victim = _wait_until(sending_worker, "a worker sending batches")
    bed.airflow.kill(victim)
    bed.wait_all(runs)
    answers = bed.assert_sent_exactly_once(tag, names)
    retried = [
        ti
        for project, run_id in runs.items()
        for ti in _task_instances(bed, project, run_id)
        if ti["task_id"] == "submit_batches" and ti["try_number"] > 1
    ]
    assert retried  # the killed worker's sends were retried (on the other worker)
    bed.airflow.restart(victim)  # the next tests get the whole bed back
    print(
        f"\nkilled {victim}; {len(retried)} submit tasks retried; resends under the same id: "
        f"{sum(n - 1 for n in answers.values())}"
    )


def test_sshd_restarted_while_claims_run_loses_and_duplicates_nothing(bed: Bed) -> None:
    tag = "sshdrestart"
    projects = [project for project, (kind, _) in bed.bases.items() if kind == "openssh"][:6]
    names = bed.put_files(tag, projects)
    runs = bed.trigger_all(tag, projects)

    def claim_states() -> list[str]:
        return [
            ti["state"]
            for project, run_id in runs.items()
            for ti in _task_instances(bed, project, run_id)
            if ti["task_id"] == "claim_files"
        ]

    _wait_until(lambda: "running" in claim_states(), "a running claim")
    restarts = 0
    while "running" in claim_states() and restarts < 5:
        bed.servers["openssh"].restart()
        restarts += 1
        time.sleep(1)
    bed.wait_all(runs)
    bed.assert_sent_exactly_once(tag, names)
    print(f"\nsshd restarted {restarts} time(s) while claims ran")


def test_redis_stopped_for_a_few_seconds_loses_and_duplicates_nothing(bed: Bed) -> None:
    tag = "redisstop"
    projects = list(bed.bases)[6:12]
    names = bed.put_files(tag, projects)
    runs = bed.trigger_all(tag, projects)
    _wait_until(
        lambda: any(
            ti["task_id"] == "claim_files" and ti["state"] in ("queued", "running", "success")
            for project, run_id in runs.items()
            for ti in _task_instances(bed, project, run_id)
        ),
        "a claim on its way",
    )
    bed.redis.stop()  # queued messages are lost too: the broker keeps nothing on disk
    time.sleep(5)
    bed.redis.start()
    bed.wait_all(runs)
    bed.assert_sent_exactly_once(tag, names)


def test_a_triggerer_killed_while_sensors_wait_on_it_hands_them_over(bed: Bed) -> None:
    tag = "triggererkill"
    projects = list(bed.bases)[12:18]
    runs = bed.trigger_all(tag, projects)
    for project, run_id in runs.items():  # every sensor waits in a triggerer (no file yet) ...
        bed.airflow.wait_for_task_state(
            bed.dag_id(project), run_id, "wait_for_files", "deferred", timeout=300
        )
        bed.airflow.wait_for_log(  # ... and the scheduler saw it defer (see test_airflow_processes)
            "scheduler",
            "Received executor event with state success for task instance "
            f"TaskInstanceKey(dag_id='{bed.dag_id(project)}', task_id='wait_for_files', run_id='{run_id}'",
            timeout=300,
        )
    triggerers = [name for name in bed.airflow.components if name.startswith("triggerer-")]
    ports = {server.port for server in bed.servers.values()}

    def sftp_connections(name: str) -> int:
        """SSH connections a triggerer (its trigger runner) holds open to the SFTP servers."""
        count = 0
        for pid in process_tree(bed.airflow._processes[name].pid):
            with contextlib.suppress(psutil.Error):
                count += sum(
                    1 for c in psutil.Process(pid).net_connections("tcp") if c.raddr and c.raddr.port in ports
                )
        return count

    # The triggerer polling the SFTP servers for the sensors is the one running their triggers.
    victim = _wait_until(
        lambda: max(triggerers, key=sftp_connections) if any(map(sftp_connections, triggerers)) else None,
        "a triggerer running the sensors' triggers",
    )
    bed.airflow.kill(victim)
    names = bed.put_files(tag, projects)
    bed.wait_all(runs)
    bed.assert_sent_exactly_once(tag, names)
    # A trigger's log is <attempt>.log.trigger.<triggerer job id>.log: the victim's triggers have two.
    trigger_logs = {
        run_id: list(
            (bed.airflow.home / "logs").glob(f"dag_id=*/run_id={run_id}/task_id=wait_for_files/*.trigger.*")
        )
        for run_id in runs.values()
    }
    assert any(len(logs) == 2 for logs in trigger_logs.values()), trigger_logs
    found = [log for logs in trigger_logs.values() for log in logs if "ready file(s)" in log.read_text()]
    assert len(found) == len(
        projects
    )  # each run's trigger found its files once, the victim's in the survivor
    bed.airflow.restart(victim)
