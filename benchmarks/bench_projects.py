"""
Benchmark: what one deployment pays per task and per run for 1 / 100 / 500 projects.

- **DAG file parse**: a fresh process per measurement imports the example DAG file with N entries,
  once as the DAG processor does (no parsing context: every DAG is built, which is also what every
  task process did before 0.4) and once as a task process does (Airflow's task runner sets the
  parsing context to the task's DAG: one DAG is built). Reports the CPU seconds of the DAG file's
  import and of the whole process (interpreter, Airflow, DAG file) from start to exit: what a task
  process spends before it executes. Medians of ``--repeat`` runs, the two kinds alternating.
- **XCom bytes per run** of the claim (JSON, as the metadata database stores it) for a claim of
  50 / 500 / 5,000 files with names like ``invoice_2026_000042.pdf`` in ``/customers/p042``: every
  file's dict (before 0.4, and ``ClaimFilesOperator``'s default) against the summary the example DAG
  keeps (``return_summary=True``); and the sensor's, every ready file's dict (the older XCom) against
  its summary (``ready_summary``: count, first 100 files, digest).
- **Status page data** (``--status``): the rows of N projects (``project_rows``: folder counts over
  SFTP from the in-process asyncssh server, 3 files in each input folder, all projects on one
  connection or one each with ``--status-connections``; last runs from a migrated SQLite database),
  the first page view (connections opened; rows not read within ``FIRST_READ_WAIT`` show
  "counting…"), how long until every row is counted (views repeated), and the next view, wall seconds.

Run: ``.venv/bin/python -m benchmarks.bench_projects [--projects 1 100 500] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="outamation-bench-"))

from airflow_outamation.assets import EVENT_FILES_LISTED
from airflow_outamation.claims import ClaimedFile
from airflow_outamation.operators.sftp import claim_summary
from airflow_outamation.readiness import RemoteFile
from airflow_outamation.ready_summary import ready_summary
from airflow_outamation.sensors.sftp import ReadyFilesSensor

DAG_FILE = Path(__file__).resolve().parents[1] / "dags" / "outamation_sftp_ingest.py"
#: The DAG whose task the task process runs.
TASK_DAG = "outamation_sftp_ingest_p000"

#: Runs in a fresh interpreter: import the DAG file (under a task's parsing context when given one).
PARSE = """
import json, sys, time
from airflow.sdk import DAG
from airflow.sdk.definitions._internal.dag_parsing_context import _airflow_parsing_context_manager
from outamation_testbed.dag_runs import import_dag_file
dag_id = sys.argv[2] or None
started = time.process_time()
with _airflow_parsing_context_manager(dag_id=dag_id, task_id="claim_files" if dag_id else None):
    module = import_dag_file(__import__("pathlib").Path(sys.argv[1]))
seconds = time.process_time() - started
dags = {value.dag_id for value in vars(module).values() if isinstance(value, DAG)}
print(json.dumps({"import": seconds, "dags": len(dags)}))
"""


def write_projects(count: int, folder: Path) -> Path:
    """A projects file of ``count`` valid entries."""
    path = folder / f"projects-{count}.json"
    entries = [
        {
            "project_id": f"p{index:03d}",
            "sftp_conn_id": f"sftp_p{index:03d}",
            "document_api_conn_id": "api",
            "base_path": f"/customers/p{index:03d}",
            "profile_code": "intake",
            "schedule": "*/15 * * * *",
        }
        for index in range(count)
    ]
    path.write_text(json.dumps(entries))
    return path


def parse_once(projects: Path, dag_id: str | None) -> dict[str, float]:
    """Import the DAG file in a fresh process; return the CPU seconds of the import and of the process."""
    env = {**os.environ, "OUTAMATION_PROJECTS_FILE": str(projects), "PROFILE_CODE": "intake"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-c", PARSE, str(DAG_FILE), dag_id or ""],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"import": result["import"], "process": process, "dags": result["dags"]}


def parse_times(counts: list[int], repeat: int, folder: Path) -> list[dict[str, object]]:
    """
    Medians of ``repeat`` imports per projects count; the DAG processor's and a task's alternate.

    CPU seconds, not wall time: on shared cores the wall time measures the neighbours.
    """
    kinds = (("DAG processor / old task", None), ("task (new)", TASK_DAG))
    rows: list[dict[str, object]] = []
    for count in counts:
        projects = write_projects(count, folder)
        runs: dict[str, list[dict[str, float]]] = {who: [] for who, _ in kinds}
        for _ in range(repeat):
            for who, dag_id in kinds:
                runs[who].append(parse_once(projects, dag_id))
        for who, _ in kinds:
            rows.append(
                {
                    "projects": count,
                    "who": who,
                    "dags": runs[who][0]["dags"],
                    "import_s": statistics.median(run["import"] for run in runs[who]),
                    "process_s": statistics.median(run["process"] for run in runs[who]),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def xcom_bytes(counts: list[int]) -> list[dict[str, int]]:
    """JSON bytes of a claim's XCom (files, summary) and of the sensor's, for ``counts`` files."""
    rows = []
    for count in counts:
        folder = "/customers/p042/in_progress/12052026"
        claimed = [
            ClaimedFile(
                filename=f"invoice_2026_{i:06d}.pdf",
                source_path=f"/customers/p042/input/invoice_2026_{i:06d}.pdf",
                backup_path=f"{folder}/invoice_2026_{i:06d}.pdf",
                size=183_402,
                mtime=1_796_000_000.0 + i,
                claim_dir=folder,
                manifest_id="outamation_sftp_ingest_p042__scheduled__2026-12-05T14_15_00_00_00",
                index=i,
            )
            for i in range(count)
        ]
        ready = [RemoteFile(file.source_path, file.size or 0, file.mtime or 0) for file in claimed]
        summary = claim_summary(claimed, folder, claimed[0].manifest_id or "", "utf-8")
        sensor = ReadyFilesSensor(
            task_id="wait_for_files", sftp_conn_id="p042", directory="/customers/p042/input"
        )
        sensor_summary = sensor._with_readiness(ready_summary(sensor.directory, ready, EVENT_FILES_LISTED))
        rows.append(
            {
                "files": count,
                "claim_files": len(json.dumps([file.to_dict() for file in claimed])),
                "claim_summary": len(json.dumps(summary)),
                "sensor_files": len(json.dumps([file.to_dict() for file in ready])),
                "sensor_summary": len(json.dumps(sensor_summary)),
            }
        )
    return rows


def _status_view(projects: list[Any], invalid: list[Any]) -> tuple[float, list[Any]]:
    """One view of the status page's rows: wall seconds and the rows."""
    from airflow.utils.session import create_session

    from airflow_outamation.plugins.status_data import project_rows

    started = time.perf_counter()
    with create_session() as session:
        shown = project_rows(session, projects, invalid, lambda dag_id: dag_id, timeout=60)
    return time.perf_counter() - started, shown


def status_times(counts: list[int], connections: int, folder: Path) -> list[dict[str, float]]:
    """Wall seconds of the status page's rows for each projects count: first view, all counted, next view."""
    import subprocess as run

    from airflow_outamation.projects import parse_projects
    from airflow_outamation.testing.asyncssh_server import AsyncsshSftpServer

    airflow = Path(sys.executable).parent / "airflow"
    run.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    rows = []
    (folder / "sftp").mkdir()
    with AsyncsshSftpServer(root=str(folder / "sftp")) as server:
        for conn in range(connections):
            os.environ[f"AIRFLOW_CONN_OUTAMATION_BENCH_{conn}"] = server.connection_json()
        for count in counts:
            entries = []
            for index in range(count):
                base = server.remote_path(f"status-{count}/p{index:03d}")
                for name in ("a.pdf", "b.pdf", "c.pdf"):
                    server.write(f"{base}/input/{name}")
                entries.append(
                    {
                        "project_id": f"p{index:03d}",
                        "sftp_conn_id": f"outamation_bench_{index % connections}",
                        "document_api_conn_id": "api",
                        "base_path": base,
                        "profile_code": "intake",
                    }
                )
            projects, invalid = parse_projects(entries, {})

            started = time.perf_counter()
            first_s, shown = _status_view(projects, invalid)
            while any(row.counting for row in shown):  # the page reloads; here: until every row is counted
                time.sleep(0.5)
                _, shown = _status_view(projects, invalid)
            counted_s = time.perf_counter() - started
            second_s, shown = _status_view(projects, invalid)
            assert all(row.waiting == 3 for row in shown), [row for row in shown if row.waiting != 3][:1]
            rows.append({"projects": count, "first_s": first_s, "counted_s": counted_s, "second_s": second_s})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--projects", type=int, nargs="+", default=[1, 100, 500])
    parser.add_argument("--parse", action=argparse.BooleanOptionalAction, default=True, help="DAG file parse")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, nargs="+", default=[50, 500, 5000])
    parser.add_argument("--status", action=argparse.BooleanOptionalAction, default=False, help="status page")
    parser.add_argument("--status-connections", type=int, default=1, help="SFTP connection ids, shared")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        rows = parse_times(args.projects, args.repeat, Path(folder)) if args.parse else []
        status = status_times(args.projects, args.status_connections, Path(folder)) if args.status else []
    print("\n| projects | parsed as | DAGs built | DAG file import, CPU | process start to exit, CPU |")
    print("|---:|---|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['projects']} | {row['who']} | {row['dags']} | {row['import_s']:.2f} s "
            f"| {row['process_s']:.2f} s |"
        )
    print("\n| files | claim XCom, every file | claim XCom, summary | sensor XCom, every file | summary |")
    print("|---:|---:|---:|---:|---:|")
    for sizes in xcom_bytes(args.files):
        print(
            f"| {sizes['files']:,} | {sizes['claim_files']:,} B | {sizes['claim_summary']:,} B "
            f"| {sizes['sensor_files']:,} B | {sizes['sensor_summary']:,} B |"
        )

    if status:
        print("\n| projects | SFTP connections | first view | every row counted | next view |")
        print("|---:|---:|---:|---:|---:|")
    for row in status:
        views = f"{row['first_s']:.2f} s | {row['counted_s']:.2f} s | {row['second_s']:.2f} s"
        print(f"| {row['projects']} | {args.status_connections} | {views} |")


if __name__ == "__main__":
    main()
