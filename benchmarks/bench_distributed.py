"""
Benchmark: 20 projects x 50 files through the example DAG, CeleryExecutor test bed beside LocalExecutor.

The distributed end-to-end tests' load (``tests/e2e/test_distributed.py``): 20 projects alternating
over OpenSSH's sshd and the asyncssh server (one Airflow connection per server), the signature-verifying
DocumentApiReceiver, all on 127.0.0.1. Two Airflow deployments, one after the other, each on fresh
servers:

- ``celery``: PostgreSQL, Redis, CeleryExecutor, two workers (concurrency 4 each), two triggerers,
  scheduler, DAG processor, API server;
- ``local``: SQLite, LocalExecutor with parallelism 8 (the same task slots), one triggerer.

The files are written first, then one run per project is triggered through the REST API; the clock
runs from the first trigger until every run finished. Printed: wall time, files/s, SSH connections
per server (opened, counted by the server; most open at once, sampled every 0.2 s) and the peak RSS of
each kind of process (each component's process tree: a Celery worker with the task processes it
runs, the scheduler with the LocalExecutor's), sampled every 0.5 s.
Run: ``.venv/bin/python -m benchmarks.bench_distributed [--executors celery local]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

from airflow_outamation.testing.asyncssh_server import AsyncsshSftpServer
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.openssh_server import OpenSshServer
from airflow_outamation.testing.server_base import SftpTestServer
from outamation_testbed.airflow_processes import AirflowProcesses
from outamation_testbed.many_projects import many_projects, process_tree
from outamation_testbed.postgres_server import PostgresServer
from outamation_testbed.redis_server import RedisServer

TASK_SLOTS = 8


class Sampler:
    """Calls ``sample`` every ``interval`` seconds in a thread until the block ends."""

    def __init__(self, sample: Callable[[], None], interval: float) -> None:
        self.sample = sample
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss(pids: set[int]) -> int:
    """The summed RSS of the processes that still exist."""
    total = 0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            total += psutil.Process(pid).memory_info().rss
    return total


@contextlib.contextmanager
def deployment(executor: str, home: Path, env: dict[str, str], dags: Path) -> Iterator[dict[str, Any]]:
    """Start one deployment; yield its AirflowProcesses and the root pids of its database and broker."""
    with contextlib.ExitStack() as stack:
        roots: dict[str, int] = {}
        if executor == "celery":
            postgres = stack.enter_context(PostgresServer())
            redis = stack.enter_context(RedisServer())
            airflow = AirflowProcesses(
                home,
                dags,
                {**env, "AIRFLOW__CORE__PARALLELISM": "32"},
                executor="CeleryExecutor",
                database_url=postgres.url,
                broker_url=redis.url,
                celery_workers=2,
                triggerers=2,
            )
            roots["postgres"] = int((postgres.data_dir / "postmaster.pid").read_text().split()[0])
            roots["redis"] = redis._process.pid if redis._process else 0
        else:
            airflow = AirflowProcesses(home, dags, {**env, "AIRFLOW__CORE__PARALLELISM": str(TASK_SLOTS)})
        try:
            airflow.start(timeout=600)
            yield {"airflow": airflow, "roots": roots}
        finally:
            airflow.stop()


def measure(executor: str, projects: int, files: int) -> dict[str, Any]:
    """Run the load on a fresh deployment of ``executor``; return its figures."""
    home = Path(tempfile.mkdtemp(prefix=f"outamation-bench-{executor}-"))
    servers: dict[str, SftpTestServer] = {"openssh": OpenSshServer(), "asyncssh": AsyncsshSftpServer()}
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, home, True)
        for server in servers.values():
            stack.enter_context(server)
        receiver = stack.enter_context(DocumentApiReceiver())
        load = many_projects(home, servers, receiver, projects)
        bed = stack.enter_context(deployment(executor, home, load.env, load.dags))
        airflow: AirflowProcesses = bed["airflow"]
        for project in load.bases:
            airflow.wait_for_dag(load.dag_id(project), timeout=600)
        names = load.put_files("bench", files)
        opened = {kind: server.connections_opened() for kind, server in servers.items()}
        ssh_peak = dict.fromkeys(servers, 0)
        rss_peak: dict[str, int] = {}

        def sample_ssh() -> None:
            for kind, server in servers.items():
                ssh_peak[kind] = max(ssh_peak[kind], server.connections_active())

        def sample_rss() -> None:
            kinds: dict[str, int] = {}
            roots = {name: process.pid for name, process in airflow._processes.items()} | bed["roots"]
            for name, pid in roots.items():
                kind = re.sub(r"-\d+$", "", name)
                kinds[kind] = kinds.get(kind, 0) + rss(process_tree(pid))
            for kind, size in kinds.items():
                rss_peak[kind] = max(rss_peak.get(kind, 0), size)

        with Sampler(sample_ssh, 0.2), Sampler(sample_rss, 0.5):
            started = time.perf_counter()
            conf = {"batch_size": 5, "stability_delay": 0.5, "uploaded_by": "bench"}
            runs = {p: airflow.trigger(load.dag_id(p), conf) for p in load.bases}
            states = {p: airflow.wait_for_run(load.dag_id(p), run, timeout=1800) for p, run in runs.items()}
            wall = time.perf_counter() - started
        accepted = [r for r in receiver.requests if r.valid and r.reply.status == 200]
        sent = {item["filename"] for r in accepted for item in r.json()["files"]}
        return {
            "executor": executor,
            "projects": projects,
            "files": projects * files,
            "runs_succeeded": sum(state == "success" for state in states.values()),
            "files_accepted": len(sent & set().union(*names.values())),
            "wall_s": wall,
            "files_per_s": len(sent) / wall,
            "ssh_opened": {kind: s.connections_opened() - opened[kind] for kind, s in servers.items()},
            "ssh_peak_open": ssh_peak,
            "peak_rss_mib": {kind: round(size / 2**20) for kind, size in sorted(rss_peak.items())},
        }


def main(args: argparse.Namespace) -> None:
    results = []
    for executor in args.executors:
        result = measure(executor, args.projects, args.files)
        print(json.dumps(result), flush=True)
        results.append(result)
    print()
    columns = ["executor", "files", "runs ok", "wall s", "files/s", "SSH opened (sshd / asyncssh)"]
    print("| " + " | ".join([*columns, "most open", "peak RSS MiB"]) + " |")
    print("|---|---:|---:|---:|---:|---|---|---|")
    for r in results:
        rss_text = ", ".join(f"{kind} {mib}" for kind, mib in r["peak_rss_mib"].items())
        print(
            f"| {r['executor']} | {r['files']:,} | {r['runs_succeeded']} | {r['wall_s']:.1f} "
            f"| {r['files_per_s']:.1f} | {r['ssh_opened']['openssh']} / {r['ssh_opened']['asyncssh']} "
            f"| {r['ssh_peak_open']['openssh']} / {r['ssh_peak_open']['asyncssh']} | {rss_text} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--executors", nargs="+", choices=["celery", "local"], default=["celery", "local"])
    parser.add_argument("--projects", type=int, default=20)
    parser.add_argument("--files", type=int, default=50, help="files per project")
    main(parser.parse_args())
