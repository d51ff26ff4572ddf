"""
Benchmark: seconds from a file's last byte on the SFTP server to its acceptance by the document API.

The test bed of the end-to-end tests (API server, scheduler, DAG processor, triggerer, LocalExecutor,
SQLite), OpenSSH's sshd and the signature-verifying DocumentApiReceiver, all on 127.0.0.1. Two
modes, each on a fresh Airflow, one after the other:

- ``event``: the project has ``"schedule": "event"``: its runs are started by the AssetWatcher of
  its input folder (ReadyFilesEventTrigger) and claim what is ready;
- ``cron``: the project runs every minute (``* * * * *``, the most frequent cron; the README's
  example is ``*/15``) and each run's ReadyFilesSensor waits in the triggerer for files.

Both poll every ``--poke-interval`` seconds with a stability delay of ``--stability-delay`` seconds.
After a warm-up file, files arrive in one of two ways (``--arrivals``):

- ``burst``: ``--files`` files one by one at random intervals over ``--spread`` seconds, a quarter of
  them growing slowly (written in chunks over 3 to 8 s);
- ``steady``: a 2 KB PDF every ``--every`` seconds for ``--minutes`` minutes (a busy customer).

Latency of a file = time the receiver accepted it - time its last byte was written. Then the other
``--projects`` - 1 projects of the same mode on the same SFTP connection are unpaused and, after their
DAGs were parsed again, an idle window of ``--idle`` seconds without any file counts the DAG runs
created (also per project and hour: with ``--sweep-interval`` the sweep runs show there) and the SSH
connections to the server (opened during the window, and the most open at once).

Printed: p50/p95/max latency, DAG runs (and the idle ones among them: runs that claimed nothing), SSH
connections, the idle figures, and where the time goes: the mean seconds from a file's last byte to
the watcher's asset event, from the event to its run, and before and in each task. Run:
``.venv/bin/python -m benchmarks.bench_latency [--modes event cron] [--arrivals burst steady] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.openssh_server import OpenSshServer
from outamation_testbed.airflow_processes import AirflowProcesses, example_dag_home

SFTP_CONN, API_CONN = "outamation_bench_sftp", "outamation_bench_api"
SCHEDULES = {"event": "event", "cron": "* * * * *"}


class Arrivals:
    """Write files into a folder one by one at random intervals, some growing slowly; note each last byte."""

    def __init__(self, server: OpenSshServer, inbox: str, seed: int) -> None:
        self.server = server
        self.inbox = inbox
        self.random = random.Random(seed)
        self.last_byte: dict[str, float] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _grow(self, name: str, chunks: int, pause: float) -> None:
        path = self.server.write(f"{self.inbox}/{name}", b"%PDF-1.7\n")
        for _ in range(chunks):
            time.sleep(pause)
            with path.open("ab") as handle:
                handle.write(os.urandom(4096))
        with self._lock:
            self.last_byte[name] = time.monotonic()

    def steady(self, every: float, minutes: float, prefix: str) -> list[str]:
        """Write a 2 KB PDF every ``every`` seconds for ``minutes`` minutes; return the names written."""
        names = []
        start = time.monotonic()
        for index in range(int(minutes * 60 / every)):
            time.sleep(max(0.0, start + index * every - time.monotonic()))
            name = f"{prefix}{index:03}.pdf"
            self.server.write(f"{self.inbox}/{name}", b"%PDF-1.7\n" + self.random.randbytes(2_039))
            with self._lock:
                self.last_byte[name] = time.monotonic()
            names.append(name)
        return names

    def run(self, count: int, spread: float, prefix: str) -> None:
        """Write ``count`` files over about ``spread`` seconds; return once the last one is complete."""
        mean_gap = spread / count
        for index in range(count):
            name = f"{prefix}{index:03}.pdf"
            if self.random.random() < 0.25:
                duration = self.random.uniform(3, 8)
                chunks = self.random.randint(4, 10)
                thread = threading.Thread(target=self._grow, args=(name, chunks, duration / chunks))
                thread.start()
                self._threads.append(thread)
            else:
                self.server.write(f"{self.inbox}/{name}", b"%PDF-1.7\n" + self.random.randbytes(20_000))
                with self._lock:
                    self.last_byte[name] = time.monotonic()
            time.sleep(self.random.expovariate(1 / mean_gap))
        for thread in self._threads:
            thread.join()


def accepted_at(receiver: DocumentApiReceiver, uploaded_by: str) -> dict[str, list[float]]:
    """When each file of a project was accepted (one time per acceptance)."""
    times: dict[str, list[float]] = {}
    for request in receiver.requests:
        if request.valid and request.reply.status < 300 and not request.reply.drop:
            body = request.json()
            if body["uploaded_by"] == uploaded_by:
                for file in body["files"]:
                    times.setdefault(file["filename"], []).append(request.received_at)
    return times


def percentile(values: list[float], share: float) -> float:
    """The ``share`` quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.5)


def count_runs(airflow: AirflowProcesses, dag_ids: list[str]) -> int:
    return sum(airflow.api("GET", f"/dags/{dag_id}/dagRuns?limit=1")["total_entries"] for dag_id in dag_ids)


def idle_runs(airflow: AirflowProcesses, dag_id: str, skip: int) -> int:
    """Runs of a DAG after the first ``skip`` that claimed nothing (their claim was skipped or never ran)."""
    runs = airflow.api("GET", f"/dags/{dag_id}/dagRuns?limit=1000&order_by=run_after")["dag_runs"][skip:]
    return sum(
        1
        for run in runs
        if "success" not in airflow.task_states(dag_id, run["dag_run_id"]).get("claim_files", [])
    )


def stage_breakdown(
    airflow: AirflowProcesses, dag_id: str, skip: int, last_byte: dict[str, float]
) -> dict[str, float]:
    """
    Mean seconds of each step of a project's runs after the first ``skip``: from each file's last byte
    (``last_byte``, epoch seconds by name) to the asset event announcing it, from the event that started
    each run to the run, and for each task the wait before it (since the run was queued or the task
    before ended) and its run.
    """
    runs = airflow.api("GET", f"/dags/{dag_id}/dagRuns?limit=100&order_by=run_after")["dag_runs"][skip:]
    steps: dict[str, list[float]] = {}
    for run in runs:
        run_id = run["dag_run_id"]
        instances = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        previous = _when(run["queued_at"])
        # run_after of an asset-triggered run: the time of the event that started it.
        steps.setdefault("asset event -> its run queued", []).append(previous - _when(run["run_after"]))
        events = airflow.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"]
        for event in events:
            for file in event["extra"].get("payload", {}).get("files", []):
                if file["filename"] in last_byte:
                    steps.setdefault("last byte -> asset event", []).append(
                        _when(event["timestamp"]) - last_byte[file["filename"]]
                    )
        for instance in sorted(instances["task_instances"], key=lambda ti: ti["start_date"] or "~"):
            if not instance["start_date"] or not instance["end_date"]:
                continue
            start, end = _when(instance["start_date"]), _when(instance["end_date"])
            steps.setdefault(f"-> {instance['task_id']} starts", []).append(start - previous)
            steps.setdefault(f"{instance['task_id']} runs", []).append(end - start)
            previous = end
    return {step: round(statistics.mean(values), 2) for step, values in steps.items()}


def _when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def measure(mode: str, arrivals_kind: str, args: argparse.Namespace, server: OpenSshServer) -> dict[str, Any]:
    """One mode on a fresh Airflow: the latency phase on one project, then the idle window on all."""
    home = Path(tempfile.mkdtemp(prefix=f"outamation-bench-latency-{mode}-"))
    root = server.remote_path(f"bench-latency-{mode}-{home.name}")
    projects = [
        {
            "project_id": f"lat{index:02}",
            "sftp_conn_id": SFTP_CONN,
            "document_api_conn_id": API_CONN,
            "base_path": f"{root}/lat{index:02}",
            "schedule": SCHEDULES[mode],
            "profile_code": "bench",
            "uploaded_by": f"bench lat{index:02}",
            "poke_interval": args.poke_interval,
            "stability_delay": args.stability_delay,
            **({"max_active_runs": args.max_active_runs} if args.max_active_runs else {}),
            **({"sweep_interval": args.sweep_interval} if args.sweep_interval else {}),
        }
        for index in range(args.projects)
    ]
    for project in projects:
        server.makedirs(f"{project['base_path']}/input")
    dags, projects_env = example_dag_home(home, projects)
    dag_ids = [f"outamation_sftp_ingest_{p['project_id']}" for p in projects]
    inbox = f"{projects[0]['base_path']}/input"
    with DocumentApiReceiver() as receiver:
        env = {
            **projects_env,
            f"AIRFLOW_CONN_{SFTP_CONN.upper()}": server.connection_json(),
            f"AIRFLOW_CONN_{API_CONN.upper()}": receiver.connection_json(),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        }
        (home / "airflow").mkdir()
        airflow = AirflowProcesses(home / "airflow", dags, env)
        try:
            airflow.start()
            airflow.wait_for_dag(dag_ids[0])  # the others stay paused for the latency phase
            arrivals = Arrivals(server, inbox, seed=args.seed)
            arrivals.run(1, 0.1, "warmup")  # the watcher (or first cron run) works before the clock starts
            wait_for(lambda: "warmup000.pdf" in accepted_at(receiver, "bench lat00"), 300, "warm-up file")
            runs_before = count_runs(airflow, dag_ids[:1])
            connections_before = server.connections_opened()
            if arrivals_kind == "steady":
                names = arrivals.steady(args.every, args.minutes, "doc")
            else:
                arrivals.run(args.files, args.spread, "doc")
                names = [f"doc{index:03}.pdf" for index in range(args.files)]
            wait_for(lambda: set(names) <= set(accepted_at(receiver, "bench lat00")), 600, "all sent")
            accepted = accepted_at(receiver, "bench lat00")
            latencies = [min(accepted[name]) - arrivals.last_byte[name] for name in names]
            wait_for(
                lambda: all(
                    run["state"] in ("success", "failed")
                    for run in airflow.api("GET", f"/dags/{dag_ids[0]}/dagRuns?limit=1000")["dag_runs"]
                ),
                300,
                "runs finished",
            )
            result: dict[str, Any] = {
                "mode": mode,
                "arrivals": arrivals_kind,
                "files": len(names),
                "sent_more_than_once": sum(1 for name in names if len(accepted[name]) > 1),
                "p50_s": statistics.median(latencies),
                "p95_s": percentile(latencies, 0.95),
                "max_s": max(latencies),
                "runs": count_runs(airflow, dag_ids[:1]) - runs_before,
                "idle_runs_in_phase": idle_runs(airflow, dag_ids[0], runs_before),
                "ssh_connections_opened": server.connections_opened() - connections_before,
            }
            wall = time.time() - time.monotonic()
            last_byte = {name: wall + when for name, when in arrivals.last_byte.items()}
            result["steps_mean_s"] = stage_breakdown(airflow, dag_ids[0], runs_before, last_byte)
            for dag_id in dag_ids[1:]:
                airflow.wait_for_dag(dag_id)
            time.sleep(30)  # unpaused DAGs parsed again: their watchers (or cron runs) are on
            runs_before = count_runs(airflow, dag_ids)
            connections_before = server.connections_opened()
            most_open = 0
            idle_until = time.monotonic() + args.idle
            while time.monotonic() < idle_until:
                most_open = max(most_open, server.connections_active())
                time.sleep(0.5)
            result.update(
                projects=args.projects,
                idle_s=args.idle,
                idle_runs=count_runs(airflow, dag_ids) - runs_before,
                idle_ssh_opened=server.connections_opened() - connections_before,
                idle_ssh_most_open=most_open,
            )
            return result
        finally:
            airflow.stop()
            shutil.rmtree(home, ignore_errors=True)


def main(args: argparse.Namespace) -> None:
    if args.quick:
        args.files, args.spread, args.idle, args.projects = 8, 30.0, 20.0, 5
    server = OpenSshServer().start()
    results = []
    try:
        for arrivals_kind in args.arrivals:
            for mode in args.modes:
                result = measure(mode, arrivals_kind, args, server)
                print(json.dumps(result), flush=True)
                results.append(result)
    finally:
        server.close()
    print()
    print(
        f"| mode | arrivals | files | p50 s | p95 s | max s | DAG runs (idle) | SSH opened | sent twice "
        f"| idle {args.idle:g} s, {args.projects} projects: runs (per project and hour) | SSH opened "
        "| SSH open at most |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        hourly = r["idle_runs"] * 3600 / r["idle_s"] / r["projects"]
        print(
            f"| {r['mode']} | {r['arrivals']} | {r['files']} | {r['p50_s']:.1f} | {r['p95_s']:.1f} "
            f"| {r['max_s']:.1f} | {r['runs']} ({r['idle_runs_in_phase']}) | {r['ssh_connections_opened']} "
            f"| {r['sent_more_than_once']} | {r['idle_runs']} ({hourly:.1f}) | {r['idle_ssh_opened']} "
            f"| {r['idle_ssh_most_open']} |"
        )
    print()
    labels = [f"{r['mode']} {r['arrivals']}" for r in results]
    print("| step, mean s (runs of the latency phase) | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(results))
    steps = dict.fromkeys(step for r in results for step in r["steps_mean_s"])
    for step in steps:
        print(f"| {step} | " + " | ".join(str(r["steps_mean_s"].get(step, "")) for r in results) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--modes", nargs="+", choices=list(SCHEDULES), default=["event", "cron"])
    parser.add_argument("--arrivals", nargs="+", choices=["burst", "steady"], default=["burst", "steady"])
    parser.add_argument("--files", type=int, default=50, help="burst: files")
    parser.add_argument("--spread", type=float, default=180.0, help="seconds over which the files arrive")
    parser.add_argument("--every", type=float, default=3.0, help="steady: seconds between files")
    parser.add_argument("--minutes", type=float, default=3.0, help="steady: minutes of arrivals")
    parser.add_argument("--poke-interval", type=float, default=2.0)
    parser.add_argument("--stability-delay", type=float, default=1.2)
    parser.add_argument("--max-active-runs", type=int, help="the entries' max_active_runs (default: theirs)")
    parser.add_argument("--sweep-interval", type=float, help="event mode's sweep_interval (default: its)")
    parser.add_argument("--projects", type=int, default=20, help="watched projects in the idle window")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of the idle window")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--quick", action="store_true", help="8 files over 30 s, 5 projects, 20 s idle")
    main(parser.parse_args())
