"""
Claiming 1,000 files into in_progress/<date>/ on a real sshd and the asyncssh server (loopback).

    .venv/bin/python -m benchmarks.bench_claim [--files 1000] [--latency-ms 5]

- ``PooledSFTPHook.claim_files``: manifest, pipelined renames into staging, placements, pipelined renames
  into place (crash-safe and exactly-once).
- 1,000 sequential paramiko ``rename`` calls (no manifest, no safety), on one open connection.
- The seed's way: per file a readiness wait (stat, sleep 1.2 s, stat) then a rename; measured on
  5 files and extrapolated.

With ``--latency-ms``, sshd sits behind a ``LatencyProxy`` that delays each direction by that much,
as a WAN link would: pipelining pays one round trip per 64 renames instead of one per rename.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="outamation-bench-home-"))

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.testing.asyncssh_server import AsyncsshSftpServer
from airflow_outamation.testing.latency_proxy import LatencyProxy
from airflow_outamation.testing.openssh_server import OpenSshServer
from airflow_outamation.testing.server_base import SftpTestServer

SEED_DELAY = 1.2


def seed_files(server: SftpTestServer, directory: str, count: int) -> list[str]:
    paths = [f"{directory}/doc{i:04}.pdf" for i in range(count)]
    for path in paths:
        server.write(path, b"%PDF-1.7")
    return paths


def bench(server: SftpTestServer, count: int, port: int) -> tuple[float, float, float]:
    conn_id = f"outamation_bench_{server.kind}_{port}"
    conn = server.connection_dict()
    conn["port"] = port
    os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    hook = PooledSFTPHook(ssh_conn_id=conn_id)
    hook.list_directory(server.remote_path(""))  # warm the pool: connection cost is not the subject

    files = seed_files(server, server.remote_path("claim/input"), count)
    started = time.perf_counter()
    claimed = hook.claim_files(files, server.remote_path("claim/in_progress/11252026"), "bench__run")
    claim_seconds = time.perf_counter() - started
    assert len(claimed) == count

    files = seed_files(server, server.remote_path("plain/input"), count)
    server.makedirs(server.remote_path("plain/in_progress"))
    sftp = hook.get_conn()
    started = time.perf_counter()
    for path in files:
        sftp.rename(path, path.replace("/input/", "/in_progress/"))
    plain_seconds = time.perf_counter() - started

    sample = seed_files(server, server.remote_path("seed/input"), 5)
    server.makedirs(server.remote_path("seed/in_progress"))
    started = time.perf_counter()
    for path in sample:
        before = sftp.stat(path).st_size
        time.sleep(SEED_DELAY)
        if sftp.stat(path).st_size == before:
            sftp.rename(path, path.replace("/input/", "/in_progress/"))
    seed_seconds = (time.perf_counter() - started) / len(sample) * count
    hook.close_conn()
    return claim_seconds, plain_seconds, seed_seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=0, help="one-way delay in front of sshd")
    args = parser.parse_args()
    count = args.files
    print(f"| server | claim_files | {count} sequential renames | seed's way (extrapolated from 5) |")
    print("|---|---:|---:|---:|")
    for server_class in (OpenSshServer, AsyncsshSftpServer):
        with server_class() as server:
            claim, plain, seed = bench(server, count, server.port)
        print(f"| {server.kind} | {claim:.2f} s | {plain:.2f} s | {seed:.0f} s |")
    if args.latency_ms:
        with OpenSshServer() as server, LatencyProxy(server.port, args.latency_ms / 1000) as proxy:
            claim, plain, seed = bench(server, count, proxy.port)
        label = f"openssh, {args.latency_ms:g} ms each way"
        print(f"| {label} | {claim:.2f} s | {plain:.2f} s | {seed:.0f} s |")
    PooledSFTPHook.close_all()


if __name__ == "__main__":
    sys.exit(main())
