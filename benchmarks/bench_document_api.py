"""
Benchmark: 200 signed batches posted sequentially to the local DocumentApiReceiver.

Compares one reused ``requests.Session`` (the hook's default) with a new session (and TCP connection)
per call, and reports the share of wall time spent signing. Run:
``.venv/bin/python -m benchmarks.bench_document_api``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="outamation-bench-"))
os.environ.pop("DOC_AI_API_URL", None)

from airflow_outamation.hooks import document_api
from airflow_outamation.hooks.document_api import DocumentApiHook
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver

BATCHES = 200
FILES_PER_BATCH = 5
ROUNDS = 3
CONN_ID = "outamation_bench_document_api"


def batches() -> list[list[dict[str, str]]]:
    """200 batches of 5 files, as BatchFilesOperator would produce them."""
    return [
        [
            {
                "filename": f"doc_{b:04d}_{i}.pdf",
                "source_path": f"/drop/input/doc_{b:04d}_{i}.pdf",
                "backup_path": f"/drop/in_progress/01012026/doc_{b:04d}_{i}.pdf",
            }
            for i in range(FILES_PER_BATCH)
        ]
        for b in range(BATCHES)
    ]


class SigningTimer:
    """Wraps the hook module's ``sign`` to add up the time spent in it."""

    def __init__(self, sign: Callable[..., dict[str, str]]) -> None:
        self.sign = sign
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, str]:
        started = time.perf_counter()
        try:
            return self.sign(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def run(
    new_session_per_call: bool, work: list[list[dict[str, str]]], timer: SigningTimer
) -> tuple[float, float]:
    """Post every batch once; return (wall seconds, seconds spent signing)."""
    hook = DocumentApiHook(CONN_ID)
    hook.settings  # noqa: B018 - read the connection before timing
    timer.seconds = 0.0
    started = time.perf_counter()
    for batch in work:
        hook.submit_batch(batch, "bench", "SFTP")
        if new_session_per_call:
            hook.close()
    elapsed = time.perf_counter() - started
    hook.close()
    return elapsed, timer.seconds


def main() -> None:
    work = batches()
    timer = SigningTimer(document_api.sign)
    document_api.sign = timer
    results: dict[str, list[tuple[float, float]]] = {}
    received = invalid = 0
    for nodelay in (True, False):
        server = "" if nodelay else ", server without TCP_NODELAY"
        with DocumentApiReceiver(tcp_nodelay=nodelay) as receiver:
            os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = receiver.connection_json(profile_code="bench")
            run(False, work[:20], timer)  # warm up imports, code paths and the connection
            for _ in range(ROUNDS):
                results.setdefault(f"reused session{server}", []).append(run(False, work, timer))
                results.setdefault(f"new session per call{server}", []).append(run(True, work, timer))
            received += len(receiver.requests)
            invalid += sum(not r.valid for r in receiver.requests)
    print(f"{BATCHES} batches x {FILES_PER_BATCH} files, sequential, {ROUNDS} rounds (median shown)")
    for mode, runs in results.items():
        wall = statistics.median(elapsed for elapsed, _ in runs)
        signing = statistics.median(signed / elapsed for elapsed, signed in runs)
        per_sign_us = statistics.median(signed for _, signed in runs) / BATCHES * 1e6
        print(
            f"{mode:>50}: {BATCHES / wall:7.0f} req/s  {wall * 1000 / BATCHES:6.2f} ms/req  "
            f"signing {signing:6.2%} of wall time ({per_sign_us:.0f} us per signature)"
        )
    print(f"receiver got {received} requests, {invalid} with an invalid signature")


if __name__ == "__main__":
    main()
