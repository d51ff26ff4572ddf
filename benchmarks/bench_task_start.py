"""
Benchmark: how long a task process of the example DAG takes from its start to its operator's first line.

For 1 and 500 project entries (``--projects``), one Airflow deployment each (scheduler with the
LocalExecutor, DAG processor, triggerer, API server; SQLite), the in-process asyncssh server and the
document API receiver on 127.0.0.1. One run of the first project's DAG is triggered with a file
waiting in its input folder. For each of its task instances: seconds from its ``start_date`` (the
supervisor started the task process) to the first log line of its operator (the task process
parsed the DAG file, built its DAG and entered ``execute``), read from the task's log. Printed: the
median and the largest over the run's tasks.

Run: ``.venv/bin/python -m benchmarks.bench_task_start [--projects 1 500]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from datetime import datetime
from pathlib import Path

from airflow_outamation.testing.asyncssh_server import AsyncsshSftpServer
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from outamation_testbed.airflow_processes import AirflowProcesses
from outamation_testbed.many_projects import many_projects

#: Loggers of the operators' own lines (sensors included) in a task's log.
OPERATOR_LOGGER = "airflow.task.operators."


def start_to_execute(airflow: AirflowProcesses, dag_id: str, run_id: str) -> dict[str, float]:
    """Task id -> seconds from the task instance's start to its operator's first log line."""
    instances = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]
    seconds = {}
    for instance in instances:
        if not instance["start_date"]:
            continue
        started = datetime.fromisoformat(instance["start_date"])
        folder = (
            airflow.home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={instance['task_id']}"
        )
        for log in sorted(folder.glob("attempt=1.log")):
            for line in log.read_text().splitlines():
                record = json.loads(line) if line.startswith("{") else {}
                if str(record.get("logger", "")).startswith(OPERATOR_LOGGER):
                    seconds[instance["task_id"]] = (
                        datetime.fromisoformat(record["timestamp"]) - started
                    ).total_seconds()
                    break
    return seconds


def measure(count: int, folder: Path) -> dict[str, object]:
    """One deployment with ``count`` projects: one run of the first project, its tasks' start to execute."""
    home = folder / f"projects-{count}"
    home.mkdir()
    with AsyncsshSftpServer(root=str(folder / f"sftp-{count}")) as server, DocumentApiReceiver() as receiver:
        projects = many_projects(home, {"asyncssh": server}, receiver, count, prefix="p")
        (home / "airflow").mkdir()
        with AirflowProcesses(home / "airflow", projects.dags, projects.env) as airflow:
            first = next(iter(projects.bases))
            dag_id = projects.dag_id(first)
            airflow.wait_for_dag(dag_id, timeout=600)
            projects.put_files("start", 1, [first])
            run_id = airflow.trigger(dag_id, {"stability_delay": 0.3})
            state = airflow.wait_for_run(dag_id, run_id, timeout=600)
            seconds = start_to_execute(airflow, dag_id, run_id)
    values = sorted(seconds.values())
    return {
        "projects": count,
        "run": state,
        "tasks": len(values),
        "median_s": statistics.median(values),
        "max_s": values[-1],
        "per_task": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, nargs="+", default=[1, 500])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for count in args.projects:
            rows.append(measure(count, Path(folder)))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| projects | run | tasks | task start to execute, median | largest |")
    print("|---:|---|---:|---:|---:|")
    for row in rows:
        times = f"{row['median_s']:.2f} s | {row['max_s']:.2f} s"
        print(f"| {row['projects']} | {row['run']} | {row['tasks']} | {times} |")


if __name__ == "__main__":
    main()
