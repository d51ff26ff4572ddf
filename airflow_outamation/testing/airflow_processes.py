"""
Real Airflow processes on a throw-away ``AIRFLOW_HOME``: API server, scheduler, DAG processor, triggerer.

For end-to-end tests of DAGs as production runs them (LocalExecutor, SQLite): runs are triggered
through the REST API, as the UI's trigger form does, sensors defer into the real triggerer.
Everything listens on 127.0.0.1 only; ``stop()`` ends every process group it started.
"""

from __future__ import annotations

import json
import os
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

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
FINISHED_STATES = ("success", "failed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class AirflowProcesses:
    """
    Start the four Airflow 3 components with a LocalExecutor on a SQLite database in ``home``.

    :param home: an empty directory to use as ``AIRFLOW_HOME``
    :param dags_folder: the DAGs to serve
    :param env: more environment (connections as ``AIRFLOW_CONN_*``, ...)
    :param users: user name -> password of the simple auth manager's admins, who must log in;
        ``None``: no login, everyone is admin (``SIMPLE_AUTH_MANAGER_ALL_ADMINS``)
    """

    def __init__(
        self,
        home: Path,
        dags_folder: Path,
        env: dict[str, str] | None = None,
        users: dict[str, str] | None = None,
    ) -> None:
        self.home = home
        self.users = users
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(24).hex(),
            "AIRFLOW__API__SECRET_KEY": os.urandom(24).hex(),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            **(self._login_env(users) if users else {}),
            **(env or {}),
        }
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
        subprocess.run(
            self._airflow("db", "migrate"), env=self.env, check=True, capture_output=True, timeout=300
        )
        for component in COMPONENTS:
            self._spawn(component)
        self._wait_healthy(timeout)
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
        args = [component]
        if component == "api-server":
            args += ["--host", "127.0.0.1", "--port", str(self.port)]
        with (self.home / f"{component}.log").open("ab") as log:
            self._processes[component] = subprocess.Popen(
                self._airflow(*args),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def restart(self, component: str, timeout: float = 180) -> None:
        """
        Stop one component (SIGTERM, SIGKILL after 20 s) and start it again; wait until all are healthy.

        :param component: one of :data:`COMPONENTS`, e.g. ``"triggerer"``
        :param timeout: seconds to wait for health after the start
        """
        self._stop_process(self._processes.pop(component))
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
