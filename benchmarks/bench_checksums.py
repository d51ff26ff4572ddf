"""
Benchmark: what ``checksum: sha256`` costs a send task, per MB of files, against OpenSSH's sshd.

Sends the same claimed files with ``SubmitBatchesOperator`` without and with ``checksum="sha256"``,
alternating, in one session (a fresh claim folder per run, so nothing counts as sent already), and
measures the Python heap peak of hashing one large file (the hash is computed while streaming).
Run: ``.venv/bin/python -m benchmarks.bench_checksums``.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import tracemalloc
import uuid

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="outamation-bench-"))
os.environ.pop("DOC_AI_API_URL", None)

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.document_api import SubmitBatchesOperator
from airflow_outamation.testing.document_api_receiver import DocumentApiReceiver
from airflow_outamation.testing.openssh_server import OpenSshServer

FILES = 20
FILE_MIB = 4
ROUNDS = 3
LARGE_MIB = 128
SFTP_CONN = "outamation_bench_sftp"
API_CONN = "outamation_bench_document_api"


def claim(server: OpenSshServer) -> list[dict[str, str]]:
    """``FILES`` random files of ``FILE_MIB`` MiB in a fresh claim folder, as claimed files."""
    folder = server.remote_path(f"bench-{uuid.uuid4().hex[:8]}/in_progress/01012026")
    files = []
    for i in range(FILES):
        path = f"{folder}/doc{i:03}.pdf"
        server.write(path, os.urandom(FILE_MIB << 20))
        files.append({"filename": f"doc{i:03}.pdf", "backup_path": path})
    return files


def send(files: list[dict[str, str]], checksum: str | None) -> float:
    """Seconds one send task takes for ``files``."""
    operator = SubmitBatchesOperator(
        task_id="submit_batches",
        claimed=files,
        uploaded_by="bench",
        source="SFTP",
        document_api_conn_id=API_CONN,
        sftp_conn_id=SFTP_CONN,
        checksum=checksum,
    )
    started = time.perf_counter()
    summary = operator.execute({})
    elapsed = time.perf_counter() - started
    assert summary["failed"] == 0, summary
    return elapsed


def main() -> None:
    with OpenSshServer() as server, DocumentApiReceiver() as receiver:
        os.environ[f"AIRFLOW_CONN_{SFTP_CONN.upper()}"] = server.connection_json()
        os.environ[f"AIRFLOW_CONN_{API_CONN.upper()}"] = receiver.connection_json(profile_code="bench")
        send(claim(server), None)  # warm up: pooled connections, imports
        times: dict[str | None, list[float]] = {None: [], "sha256": []}
        for _ in range(ROUNDS):
            for checksum in times:
                times[checksum].append(send(claim(server), checksum))
        megabytes = FILES * FILE_MIB * (1 << 20) / 1e6
        plain, summed = (statistics.median(times[c]) for c in times)
        print(f"{FILES} files of {FILE_MIB} MiB ({megabytes:.0f} MB), median of {ROUNDS} send tasks:")
        print("| send task | seconds | ms per MB |")
        print("|---|---:|---:|")
        print(f"| no checksum | {plain:.2f} | {plain / megabytes * 1000:.1f} |")
        print(f"| checksum: sha256 | {summed:.2f} | {summed / megabytes * 1000:.1f} |")
        print(f"cost of the checksum: {(summed - plain) / megabytes * 1000:.1f} ms per MB")

        large = server.remote_path(f"bench-{uuid.uuid4().hex[:8]}/large.pdf")
        server.write(large, os.urandom(LARGE_MIB << 20))
        hook = PooledSFTPHook(SFTP_CONN)
        tracemalloc.start()
        started = time.perf_counter()
        hook.sha256_files([large])
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] / (1 << 20)
        tracemalloc.stop()
        print(
            f"sha256_files of one {LARGE_MIB} MiB file: {elapsed:.2f} s "
            f"({LARGE_MIB * (1 << 20) / 1e6 / elapsed:.0f} MB/s, under tracemalloc), "
            f"Python heap peak {peak:.1f} MiB"
        )
        PooledSFTPHook.close_all()


if __name__ == "__main__":
    main()
