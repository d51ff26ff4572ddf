"""
Real Airflow processes on a throw-away ``AIRFLOW_HOME``: API server, scheduler, DAG processor, triggerer.

For end-to-end tests of DAGs as production runs them: runs are triggered through the REST API, as
the UI's trigger form does, sensors defer into the real triggerer(s). By default LocalExecutor on
SQLite; with ``executor="CeleryExecutor"`` a database URL (PostgreSQL) and a broker URL (Redis), it
also starts Celery workers, and any number of triggerers (which take over each other's triggers).
Everything listens on 127.0.0.1 only (the components' log servers are not started: they bind to
every interface, and every component writes its logs into the one ``AIRFLOW_HOME`` anyway);
``stop()`` ends every process group it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

FINISHED_STATES = ("success", "failed")


#: The repository's example DAG file, which the test bed runs as a user would.
EXAMPLE_DAG = Path(__file__).resolve().parents[1] / "dags" / "outamation_sftp_ingest.py"


def example_dag_home(home: Path, projects: list[dict[str, Any]]) -> tuple[Path, dict[str, str]]:
    """
    Give an Airflow home the example DAG and a projects file listing ``projects``.

    :param home: the Airflow home (gets ``projects.json`` and ``dags/``)
    :param projects: the entries of the projects file
    :return: the DAGs folder, and the environment naming the projects file
    """
    (home / "projects.json").write_text(json.dumps(projects))
    dags = home / "dags"
    dags.mkdir(exist_ok=True)
    shutil.copy(EXAMPLE_DAG, dags)
    return dags, {"OUTAMATION_PROJECTS_FILE": str(home / "projects.json")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _components(port: int, executor: str, celery_workers: int, triggerers: int) -> dict[str, list[str]]:
    """Component name -> its ``airflow`` command line; no component serves logs (they bind to ``::``)."""
    components = {
        "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(port)],
        "scheduler": ["scheduler", "--skip-serve-logs"],
        "dag-processor": ["dag-processor"],
    }
    names = ["triggerer"] if triggerers == 1 else [f"triggerer-{i}" for i in range(1, triggerers + 1)]
    components.update({name: ["triggerer", "--skip-serve-logs"] for name in names})
    if executor == "CeleryExecutor":
        for i in range(1, celery_workers + 1):
            name = f"celery-worker-{i}"
            components[name] = ["celery", "worker", "--celery-hostname", name, "--skip-serve-logs"]
    return components


def _distributed_settings(
    executor: str, database_url: str | None, broker_url: str | None, triggerers: int
) -> dict[str, str]:
    """Settings of a CeleryExecutor deployment and of triggerers taking over each other's triggers."""
    settings: dict[str, str] = {}
    if executor == "CeleryExecutor":
        settings |= {
            "AIRFLOW__CELERY__BROKER_URL": str(broker_url),
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+{database_url}",
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            # a task whose worker died is failed (then retried) after 30 s without a heartbeat
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            # a task whose broker message was lost (Redis restarted) is queued again after 60 s
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "10",
        }
    if triggerers > 1:
        settings |= {
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
        }
    return settings


class AirflowProcesses:
    """
    Start the Airflow 3 components, by default with a LocalExecutor on a SQLite database in ``home``.

    Components are ``api-server``, ``scheduler``, ``dag-processor`` and ``triggerer``; with several
    triggerers they are ``triggerer-1``, ``triggerer-2``, ..., and Celery workers are ``celery-worker-1``,
    ... (also their Celery hostnames).

    :param home: an empty directory to use as ``AIRFLOW_HOME``
    :param dags_folder: the DAGs to serve
    :param env: more environment (connections as ``AIRFLOW_CONN_*``, ...); it wins over the defaults
    :param executor: ``LocalExecutor`` or ``CeleryExecutor``
    :param database_url: the metadata database's SQLAlchemy URL; SQLite in ``home`` when not given
    :param broker_url: the Celery broker (``redis://...``); required with ``CeleryExecutor``
    :param celery_workers: how many Celery workers to start (``CeleryExecutor`` only)
    :param triggerers: how many triggerers to start; with more than one, a triggerer whose heartbeat
        is 10 s old counts as dead and the others take its triggers over
    :param users: user name -> password of the simple auth manager's admins, who must log in;
        ``None``: no login, everyone is admin (``SIMPLE_AUTH_MANAGER_ALL_ADMINS``)
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        env: dict[str, str] | None = None,
        *,
        executor: str = "LocalExecutor",
        database_url: str | None = None,
        broker_url: str | None = None,
        celery_workers: int = 2,
        triggerers: int = 1,
        users: dict[str, str] | None = None,
    ) -> None:
        if executor == "CeleryExecutor" and not (broker_url and database_url):
            raise ValueError("CeleryExecutor needs a broker_url and a database_url (SQLite cannot be shared)")
        self.home = home
        self.users = users
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url or f"sqlite:///{home}/airflow.db",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(24).hex(),
            "AIRFLOW__API__SECRET_KEY": os.urandom(24).hex(),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            **(self._login_env(users) if users else {}),
            **_distributed_settings(executor, database_url, broker_url, triggerers),
            **(env or {}),
        }
        self.components = _components(self.port, executor, celery_workers, triggerers)
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._session = requests.Session()

    def _login_env(self, users: dict[str, str]) -> dict[str, str]:
        """The simple auth manager's settings for ``users``, their passwords file written in ``home``."""
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps(users))
        return {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{name}:admin" for name in users),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
        }

    def _airflow(self, *args: str) -> list[str]:
        return [str(Path(sys.executable).parent / "airflow"), *args]

    def start(self, timeout: float = 180) -> AirflowProcesses:
        """Migrate the database, start the components and wait until all report healthy."""
        migrate = subprocess.run(
            self._airflow("db", "migrate"), env=self.env, capture_output=True, timeout=300, check=False
        )
        if migrate.returncode != 0:
            output = migrate.stderr.decode(errors="replace")[-3000:]
            raise RuntimeError(f"airflow db migrate failed (exit {migrate.returncode}): {output}")
        for component in self.components:
            self._spawn(component)
        self._wait_healthy(timeout)
        for component in self.components:
            if component.startswith("celery-worker-"):
                self.wait_for_log(component, f"celery@{component} ready.", timeout)
        if self.users:
            username, password = next(iter(self.users.items()))
            answer = self._session.post(
                f"{self.base_url}/auth/token", json={"username": username, "password": password}, timeout=10
            )
        else:
            answer = self._session.get(f"{self.base_url}/auth/token", timeout=10)
        token = answer.json()["access_token"]
        self._session.headers["Authorization"] = f"Bearer {token}"
        return self

    def _spawn(self, component: str) -> None:
        """Start one component in its own process group, appending to its log."""
        with (self.home / f"{component}.log").open("ab") as log:
            self._processes[component] = subprocess.Popen(
                self._airflow(*self.components[component]),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def restart(self, component: str, timeout: float = 180) -> None:
        """
        Stop one component (SIGTERM, SIGKILL after 20 s) and start it again; wait until all are healthy.

        A component ended by :meth:`kill` is started again.

        :param component: a name of :attr:`components`, e.g. ``"triggerer"``
        :param timeout: seconds to wait for health after the start
        """
        process = self._processes.pop(component, None)
        if process is not None:
            self._stop_process(process)
        self._spawn(component)
        self._wait_healthy(timeout)

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            for component, process in self._processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"airflow {component} exited: {self.log_tail(component)}")
            try:
                health = self._session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5).json()
            except (requests.RequestException, ValueError):
                health = {}
            if health and all(part.get("status") == "healthy" for part in health.values()):
                return
            time.sleep(1)
        raise RuntimeError(f"Airflow did not become healthy within {timeout:g} s: {health}")

    def log_tail(self, component: str, chars: int = 3000) -> str:
        """The end of a component's log."""
        path = self.home / f"{component}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call the REST API (``/api/v2`` + ``path``) and return the JSON answer."""
        response = self._session.request(method, f"{self.base_url}/api/v2{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> None:
        """Wait until the DAG processor has parsed ``dag_id``, then unpause it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
                return
            except requests.HTTPError:
                time.sleep(1)
        raise RuntimeError(
            f"DAG {dag_id} did not appear within {timeout:g} s: {self.log_tail('dag-processor')}"
        )

    def trigger(self, dag_id: str, conf: dict[str, Any]) -> str:
        """Trigger a run with ``conf``, as the UI's trigger form does; return its run id."""
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": conf})
        return str(run["dag_run_id"])

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180) -> str:
        """Wait until a run finishes; return its state."""
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]
            if state in FINISHED_STATES:
                return state
            time.sleep(1)
        raise TimeoutError(f"run {run_id} of {dag_id} still {state!r} after {timeout:g} s")

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 120
    ) -> None:
        """Wait until every instance of ``task_id`` in a run is in ``state``."""
        deadline = time.monotonic() + timeout
        states: list[str] = []
        while time.monotonic() < deadline:
            states = self.task_states(dag_id, run_id).get(task_id, [])
            if states and set(states) == {state}:
                return
            time.sleep(0.5)
        raise TimeoutError(f"{task_id} of {dag_id} {run_id} is {states}, not {state!r}, after {timeout:g} s")

    def wait_for_log(self, component: str, text: str, timeout: float = 120) -> None:
        """Wait until a component's log contains ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log_tail(component, chars=10**7):
                return
            time.sleep(0.5)
        raise TimeoutError(f"{text!r} not in the {component} log after {timeout:g} s")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, list[str]]:
        """Task id -> states of its (mapped) instances in a run."""
        instances: list[dict[str, Any]] = []
        while True:  # the API answers 100 instances a page at most
            page = self.api(
                "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(instances)}"
            )
            instances += page["task_instances"]
            if not page["task_instances"] or len(instances) >= page["total_entries"]:
                break
        states: dict[str, list[str]] = {}
        for instance in instances:
            states.setdefault(instance["task_id"], []).append(instance["state"])
        return states

    def kill(self, component: str) -> None:
        """SIGKILL a component and every process it started, as the loss of its machine would."""
        process = self._processes.pop(component)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop(self) -> None:
        """Terminate every component and its children; kill what does not stop within 20 s."""
        for process in self._processes.values():
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in self._processes.values():
            self._stop_process(process, deadline)
        self._processes.clear()
        self._session.close()

    @staticmethod
    def _stop_process(process: subprocess.Popen[bytes], deadline: float | None = None) -> None:
        """End a component's process group: SIGTERM, then SIGKILL for what is left at ``deadline``."""
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(max(0.1, (deadline or time.monotonic() + 20) - time.monotonic()))
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers or helpers left behind
        process.wait()

    def __enter__(self) -> AirflowProcesses:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
