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

Each run is triggered first; once its sensor waits in the triggerer, the N files are written (under
temporary ``.part`` names, then renamed, as uploaders do: the sensor never fires on part of the drop)
and the clock starts. It stops when the run succeeded (and the input folder is empty). Printed: wall time (the
run's state is polled every second), the time to the run's end as Airflow recorded it (its
``end_date``: the last byte written to the run's success, without the polling), files/s, DAG runs,
task instances, API calls, distinct message ids, the peak RSS of the task processes (the
LocalExecutor's workers and the tasks they run), sampled every 0.2 s, each task's time, and the SFTP
round trips of the run (counted by the proxy: a client speaking again after the server answered).

At a customer's distance: ``--rtt-ms 50`` puts a :class:`LatencyProxy` (25 ms each way) between
Airflow and sshd, ``--api-ms 300`` makes the receiver answer every batch after 300 ms. Run:
``.venv/bin/python -m benchmarks.bench_pipeline [--files 200 1000 10000] [--paths per-batch one-task]
[--rtt-ms 50 --api-ms 300]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.latency_proxy import LatencyProxy
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


def task_seconds(airflow: AirflowProcesses, dag_id: str, run_ids: list[str]) -> dict[str, float]:
    """Task id -> seconds its instances ran (start to end), summed over ``run_ids``."""
    seconds: Counter[str] = Counter()
    for run_id in run_ids:
        page = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        for instance in page["task_instances"]:
            if instance.get("duration") is not None:
                seconds[instance["task_id"]] += float(instance["duration"])
    return dict(seconds)


def timeline(airflow: AirflowProcesses, dag_id: str, run_id: str, since: float) -> dict[str, list[float]]:
    """Task id -> [start, end] of its instance in ``run_id``, seconds after ``since`` (epoch)."""
    page = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
    return {
        instance["task_id"]: [
            round(datetime.fromisoformat(instance[key]).timestamp() - since, 1)
            for key in ("start_date", "end_date")
        ]
        for instance in page["task_instances"]
        if instance.get("start_date") and instance.get("end_date")
    }


def measure(
    airflow: AirflowProcesses,
    server: OpenSshServer,
    receiver: DocumentApiReceiver,
    proxy: LatencyProxy | None,
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
    trips_before = proxy.round_trips if proxy else 0
    sampler = RssSampler(airflow._processes["scheduler"].pid)
    with sampler:
        # Uploaded under temporary names (never ready), then renamed: the drop appears within
        # milliseconds, so the sensor never fires on a part of it while the rest is being written.
        uploads = [
            server.write(f"{base}/input/doc{i:05}.pdf.part", b"%PDF-1.7 " + str(i).encode() * 20)
            for i in range(count)
        ]
        for upload in uploads:
            upload.rename(upload.with_suffix(""))
        started, started_at = time.perf_counter(), time.time()
        deadline = started + 1200
        while True:
            state = airflow.wait_for_run(dag_id, runs[-1], timeout=deadline - time.perf_counter())
            if state != "success" or not any(server.local_path(f"{base}/input").iterdir()):
                break
            runs.append(airflow.trigger(dag_id, conf))  # the rest of the backlog: the next run
        accepted = accepted_files(receiver, base)
        wall = time.perf_counter() - started
    run_end = datetime.fromisoformat(airflow.api("GET", f"/dags/{dag_id}/dagRuns/{runs[-1]}")["end_date"])
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
        "to_run_end_s": run_end.timestamp() - started_at,
        "files_per_s": len(accepted) / wall,
        "runs": len(runs),
        "task_instances": instances,
        "api_calls": len(requests),
        "message_ids": len({r.message_id for r in requests}),
        "peak_rss_sum_mib": sampler.peak_sum / 2**20,
        "peak_rss_one_mib": sampler.peak_one / 2**20,
        "sftp_round_trips": (proxy.round_trips - trips_before) if proxy else None,
        "task_s": task_seconds(airflow, dag_id, runs),
        "first_run_timeline_s": timeline(airflow, dag_id, runs[0], started_at),
    }


def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="outamation-bench-pipeline-"))
    server = OpenSshServer().start()
    proxy = LatencyProxy(server.port, delay=args.rtt_ms / 2000).start() if args.rtt_ms else None
    sftp_conn = server.connection_dict()
    if proxy:
        sftp_conn["port"] = proxy.port
    root = server.remote_path("bench-pipeline")
    project = {
        "project_id": "bench",
        "sftp_conn_id": SFTP_CONN,
        "document_api_conn_id": API_CONN,
        "base_path": root,
        "schedule": None,
        "profile_code": "bench",
        "poke_interval": 1,
        "stability_delay": 0.5,
        "max_files_per_run": args.max_files_per_run,
    }
    dags, projects_env = example_dag_home(home, [project])
    (dags / "per_batch.py").write_text(PER_BATCH_DAG)
    results = []
    with DocumentApiReceiver(answer_delay=args.api_ms / 1000) as receiver:
        env = {
            **projects_env,
            f"AIRFLOW_CONN_{SFTP_CONN.upper()}": json.dumps(sftp_conn),
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
                    result = measure(airflow, server, receiver, proxy, path, count, root)
                    print(json.dumps(result), flush=True)
                    results.append(result)
        finally:
            airflow.stop()
            if proxy:
                proxy.stop()
            server.close()
    print()
    print(
        "| path | files | runs | wall s | to run's end s | files/s | task instances | API calls "
        "| distinct ids | accepted once | twice+ | left in input | no receipt "
        "| peak RSS tasks MiB (sum / largest) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    distance = f"{args.rtt_ms:g} ms RTT, API {args.api_ms:g} ms" if args.rtt_ms or args.api_ms else "loopback"
    for r in results:
        print(
            f"| {r['path']} | {r['files']:,} | {r['runs']} | {r['wall_s']:.1f} | {r['to_run_end_s']:.1f} "
            f"| {r['files_per_s']:.1f} "
            f"| {r['task_instances']:,} | {r['api_calls']:,} | {r['message_ids']:,} | {r['accepted_once']:,} "
            f"| {r['accepted_twice_or_more']} | {r['left_in_input']} | {r['in_progress_without_receipt']} "
            f"| {r['peak_rss_sum_mib']:.0f} / {r['peak_rss_one_mib']:.0f} |"
        )
    print()
    for r in results:
        tasks = ", ".join(f"{task} {seconds:.1f} s" for task, seconds in r["task_s"].items())
        print(
            f"{r['path']} {r['files']:,} files ({distance}): {tasks}; "
            f"SFTP round trips {r['sftp_round_trips']}"
        )
        timeline_s = r["first_run_timeline_s"].items()
        spans = ", ".join(f"{task} {start:g}-{end:g}" for task, (start, end) in timeline_s)
        print(f"  first run, seconds after the last byte written (start-end): {spans}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--files", type=int, nargs="+", default=[200, 1000, 10000])
    parser.add_argument("--paths", nargs="+", default=["per-batch", "one-task"])
    parser.add_argument("--rtt-ms", type=float, default=0, help="SFTP round trip through a LatencyProxy")
    parser.add_argument("--api-ms", type=float, default=0, help="time the API takes to answer a batch")
    parser.add_argument("--max-files-per-run", type=int, default=5000, help="the project entry's cap")
    main(parser.parse_args())
