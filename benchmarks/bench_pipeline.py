"""
Benchmark: N ready files to every file accepted by the document API, on real Airflow processes.

The test bed of the end-to-end tests (API server, scheduler, DAG processor, triggerer, LocalExecutor,
SQLite), OpenSSH's sshd and the signature-verifying DocumentApiReceiver, all on 127.0.0.1. Two paths
on one Airflow, one right after the other:

- ``per-batch``: 0.1's DAG shape, ReadyFilesSensor -> ClaimFilesOperator -> BatchFilesOperator ->
  SubmitBatchOperator mapped once per batch of 5 (it cannot take more than 5,120 files in one run:
  Airflow's ``max_map_length`` is 1,024);
- ``one-task``: the example DAG, ReadyFilesSensor -> ClaimFilesOperator -> SubmitBatchesOperator
  (every batch in one task, 8 in flight), at most ``max_files_per_run`` files per run (5,000); a
  larger drop is worked off by runs triggered one after the other.

Each run is triggered first; once its sensor waits in the triggerer, the N files are written and the
clock starts. It stops when the receiver accepted every file. Printed: wall time, files/s, DAG runs,
task instances, API calls, distinct message ids, and the peak RSS of the task processes (the
LocalExecutor's workers and the tasks they run), sampled every 0.2 s. Run:
``.venv/bin/python -m benchmarks.bench_pipeline [--files 200 1000 10000] [--paths per-batch one-task]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.openssh_server import OpenSshServer
from outamation_testbed.airflow_processes import AirflowProcesses, example_dag_home

SFTP_CONN, API_CONN = "outamation_bench_sftp", "outamation_bench_api"
NEW_DAG, OLD_DAG = "outamation_sftp_ingest_bench", "outamation_bench_per_batch"

PER_BATCH_DAG = f"""
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG, Param

from airflow_outamation.operators.batch import BatchFilesOperator
from airflow_outamation.operators.document_api import SubmitBatchOperator
from airflow_outamation.operators.sftp import ClaimFilesOperator
from airflow_outamation.sensors.sftp import ReadyFilesSensor

with DAG(
    dag_id="{OLD_DAG}",
    schedule=None,
    start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
    params={{"base_path": Param("/", type="string")}},
    default_args={{"retries": 2, "retry_delay": timedelta(seconds=5)}},
):
    wait = ReadyFilesSensor(
        task_id="wait_for_files", sftp_conn_id="{SFTP_CONN}", directory="{{{{ params.base_path }}}}/input",
        poke_interval=1, timeout=600, stability_delay=1.2, deferrable=True,
    )
    claim = ClaimFilesOperator(
        task_id="claim_files", sftp_conn_id="{SFTP_CONN}", base_path="{{{{ params.base_path }}}}",
        files=wait.output,
    )
    batches = BatchFilesOperator(task_id="make_batches", claimed=claim.output)
    SubmitBatchOperator.partial(
        task_id="submit_batch", document_api_conn_id="{API_CONN}", uploaded_by="bench", source="SFTP",
        profile_code="bench",
        sftp_conn_id="{SFTP_CONN}",
    ).expand(batch=batches.output)
"""


class RssSampler:
    """Peak RSS of the scheduler's descendants (LocalExecutor workers and the task processes)."""

    def __init__(self, root_pid: int, interval: float = 0.2) -> None:
        self.root = psutil.Process(root_pid)
        self.interval = interval
        self.peak_sum = self.peak_one = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            sizes = []
            for child in self.root.children(recursive=True):
                try:
                    sizes.append(child.memory_info().rss)
                except psutil.Error:
                    continue
            self.peak_sum = max(self.peak_sum, sum(sizes))
            self.peak_one = max(self.peak_one, max(sizes, default=0))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def accepted_files(receiver: DocumentApiReceiver, base: str) -> Counter[str]:
    """How often each file under ``base`` was in a batch the receiver accepted."""
    counts: Counter[str] = Counter()
    for request in receiver.requests:
        if request.valid and request.reply.status < 300 and not request.reply.drop:
            counts.update(
                f["filename"] for f in request.json()["files"] if f["backup_path"].startswith(base + "/")
            )
    return counts


def without_receipt(server: OpenSshServer, base: str) -> int:
    """How many claimed files in ``<base>/in_progress/*/`` no receipt lists."""
    unsent = 0
    for folder in server.local_path(f"{base}/in_progress").iterdir():
        sent_dir = folder / ".claims" / "sent"
        receipts = sent_dir.glob("*.json") if sent_dir.is_dir() else []
        listed = {entry["path"] for receipt in receipts for entry in json.loads(receipt.read_text())["files"]}
        stored = {f"{base}/in_progress/{folder.name}/{p.name}" for p in folder.glob("*.pdf")}
        unsent += len(stored - listed)
    return unsent


def start_run(airflow: AirflowProcesses, dag_id: str, conf: dict[str, Any]) -> str:
    """Trigger a run and wait until its sensor waits in the triggerer (Airflow 3.3.2: see the e2e test)."""
    run_id = airflow.trigger(dag_id, conf)
    airflow.wait_for_task_state(dag_id, run_id, "wait_for_files", "deferred", timeout=300)
    airflow.wait_for_log(
        "scheduler",
        "Received executor event with state success for task instance "
        f"TaskInstanceKey(dag_id='{dag_id}', task_id='wait_for_files', run_id='{run_id}'",
    )
    return run_id


def measure(
    airflow: AirflowProcesses,
    server: OpenSshServer,
    receiver: DocumentApiReceiver,
    path: str,
    count: int,
    root: str,
) -> dict[str, Any]:
    """Drop ``count`` files for one path and time them until every one was accepted."""
    dag_id = NEW_DAG if path == "one-task" else OLD_DAG
    sub = f"{path}-{count}"
    base = f"{root}/{sub}"
    server.makedirs(f"{base}/input")
    conf = {"base_path": sub if path == "one-task" else base}
    runs = [start_run(airflow, dag_id, conf)]
    calls_before = len(receiver.requests)
    sampler = RssSampler(airflow._processes["scheduler"].pid)
    with sampler:
        for i in range(count):
            server.write(f"{base}/input/doc{i:05}.pdf", b"%PDF-1.7 " + str(i).encode() * 20)
        started = time.perf_counter()
        deadline = started + 1200
        while True:
            state = airflow.wait_for_run(dag_id, runs[-1], timeout=deadline - time.perf_counter())
            if state != "success" or not any(server.local_path(f"{base}/input").iterdir()):
                break
            runs.append(airflow.trigger(dag_id, conf))  # the rest of the backlog: the next run
        accepted = accepted_files(receiver, base)
        wall = time.perf_counter() - started
    requests = receiver.requests[calls_before:]
    instances = sum(len(states) for run in runs for states in airflow.task_states(dag_id, run).values())
    return {
        "path": path,
        "files": count,
        "state": state,
        "accepted_once": sum(1 for n in accepted.values() if n == 1),
        "accepted_twice_or_more": sum(1 for n in accepted.values() if n > 1),
        "left_in_input": len(list(server.local_path(f"{base}/input").iterdir())),
        "in_progress_without_receipt": without_receipt(server, base),
        "wall_s": wall,
        "files_per_s": len(accepted) / wall,
        "runs": len(runs),
        "task_instances": instances,
        "api_calls": len(requests),
        "message_ids": len({r.message_id for r in requests}),
        "peak_rss_sum_mib": sampler.peak_sum / 2**20,
        "peak_rss_one_mib": sampler.peak_one / 2**20,
    }


def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="outamation-bench-pipeline-"))
    server = OpenSshServer().start()
    root = server.remote_path("bench-pipeline")
    project = {
        "project_id": "bench",
        "sftp_conn_id": SFTP_CONN,
        "document_api_conn_id": API_CONN,
        "base_path": root,
        "schedule": None,
        "profile_code": "bench",
        "poke_interval": 1,
    }
    dags, projects_env = example_dag_home(home, [project])
    (dags / "per_batch.py").write_text(PER_BATCH_DAG)
    results = []
    with DocumentApiReceiver() as receiver:
        env = {
            **projects_env,
            f"AIRFLOW_CONN_{SFTP_CONN.upper()}": server.connection_json(),
            f"AIRFLOW_CONN_{API_CONN.upper()}": receiver.connection_json(),
        }
        airflow = AirflowProcesses(home / "airflow", dags, env)
        (home / "airflow").mkdir()
        try:
            airflow.start()
            for dag_id in (NEW_DAG, OLD_DAG):
                airflow.wait_for_dag(dag_id)
            for count in args.files:
                for path in args.paths:
                    if path == "per-batch" and count > 5120:
                        print(f"per-batch, {count} files: not run (more than 1,024 mapped batches)")
                        continue
                    result = measure(airflow, server, receiver, path, count, root)
                    print(json.dumps(result), flush=True)
                    results.append(result)
        finally:
            airflow.stop()
            server.close()
    print()
    print(
        "| path | files | runs | wall s | files/s | task instances | API calls | distinct ids "
        "| accepted once | twice+ | left in input | no receipt | peak RSS tasks MiB (sum / largest) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        print(
            f"| {r['path']} | {r['files']:,} | {r['runs']} | {r['wall_s']:.1f} | {r['files_per_s']:.1f} "
            f"| {r['task_instances']:,} | {r['api_calls']:,} | {r['message_ids']:,} | {r['accepted_once']:,} "
            f"| {r['accepted_twice_or_more']} | {r['left_in_input']} | {r['in_progress_without_receipt']} "
            f"| {r['peak_rss_sum_mib']:.0f} / {r['peak_rss_one_mib']:.0f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--files", type=int, nargs="+", default=[200, 1000, 10000])
    parser.add_argument("--paths", nargs="+", default=["per-batch", "one-task"])
    main(parser.parse_args())
