"""
Benchmark: what a failed send, resend, completion and retention cost per batch at a distance.

OpenSSH's sshd behind a :class:`LatencyProxy` (``--rtt-ms``, 50 by default) and the local receiver
(instant). For each batch count: claim ``5 x batches`` files and send them with the API failing
(the batches and their failed attempts are recorded, none accepted), then three
``ResendUnsentOperator`` runs: the resend (every batch accepted, ``completion="keep"``), the
completion (``move`` to the processed folder) and the retention (``retention_days=0``: the finished
claim's records removed). Printed per step: seconds and the SFTP round trips counted by the proxy;
a cost that grows with the batch count shows as a growing difference between the rows. Run:
``.venv/bin/python -m benchmarks.bench_housekeeping [--batches 10 40] [--rtt-ms 50]``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="outamation-bench-"))

from airflow_outamation.exceptions import DocumentApiError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.document_api import ResendUnsentOperator, SubmitBatchesOperator
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.latency_proxy import LatencyProxy
from airflow_outamation.testing.openssh_server import OpenSshServer

SFTP_CONN, API_CONN = "outamation_bench_sftp", "outamation_bench_api"
BATCH_SIZE = 5
STEPS = ("failed send", "resend", "completion", "retention")


def timed(proxy: LatencyProxy, step: Callable[[], Any]) -> tuple[float, int]:
    """Seconds and SFTP round trips of ``step``, on a fresh pool (connection set-up included)."""
    PooledSFTPHook.close_all()
    trips, started = proxy.round_trips, time.perf_counter()
    step()
    return time.perf_counter() - started, proxy.round_trips - trips


def measure(server: OpenSshServer, receiver: DocumentApiReceiver, proxy: LatencyProxy, batches: int) -> dict:
    """The failed send, resend, completion and retention of ``batches`` batches, each timed."""
    base = server.remote_path(f"bench-housekeeping-{batches}")
    paths = []
    for i in range(batches * BATCH_SIZE):
        paths.append(f"{base}/input/doc{i:05}.pdf")
        server.write(paths[-1], f"%PDF-1.7 {i}".encode())
    claimed = PooledSFTPHook(SFTP_CONN).claim_files(paths, f"{base}/in_progress/12052026", "bench__run")
    receiver.script(*[503] * batches)
    submit = SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=[file.to_dict() for file in claimed],
        uploaded_by="bench",
        source="SFTP",
        profile_code="bench",
        batch_size=BATCH_SIZE,
        document_api_conn_id=API_CONN,
        sftp_conn_id=SFTP_CONN,
        hook_kwargs={"max_retries": 0},
    )
    result: dict[str, Any] = {"batches": batches}

    def send_failing() -> None:
        with contextlib.suppress(DocumentApiError):  # every batch recorded, none sent: what the resend finds
            submit.execute({})

    result["failed send"] = timed(proxy, send_failing)

    def resend(**kwargs: Any) -> Callable[[], Any]:
        operator = ResendUnsentOperator(
            task_id="resend_unsent",
            sftp_conn_id=SFTP_CONN,
            base_path=base,
            document_api_conn_id=API_CONN,
            **{"retention_days": None, **kwargs},
        )
        return lambda: operator.execute({})

    for step, kwargs in (
        ("resend", {}),
        ("completion", {"completion": "move"}),
        ("retention", {"completion": "move", "retention_days": 0}),
    ):
        result[step] = timed(proxy, resend(**kwargs))
    return result


def main(args: argparse.Namespace) -> None:
    server = OpenSshServer().start()
    proxy = LatencyProxy(server.port, delay=args.rtt_ms / 2000).start()
    connection = {**server.connection_dict(), "port": proxy.port}
    try:
        with DocumentApiReceiver() as receiver:
            os.environ[f"AIRFLOW_CONN_{SFTP_CONN.upper()}"] = json.dumps(connection)
            os.environ[f"AIRFLOW_CONN_{API_CONN.upper()}"] = receiver.connection_json()
            results = [measure(server, receiver, proxy, n) for n in args.batches]
    finally:
        PooledSFTPHook.close_all()
        proxy.stop()
        server.close()
    print(f"| batches ({args.rtt_ms:g} ms RTT) | {' | '.join(STEPS)} (s / SFTP round trips) |")
    print(f"|---:|{'---|' * len(STEPS)}")
    for r in results:
        cells = " | ".join(f"{r[step][0]:.1f} s / {r[step][1]:,}" for step in STEPS)
        print(f"| {r['batches']} | {cells} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--batches", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--rtt-ms", type=float, default=50)
    main(parser.parse_args())
