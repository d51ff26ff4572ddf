"""
PooledSFTPHook against the stock SFTPHook and OpenSSH's sftp command line, on a real sshd (loopback).

    .venv/bin/python -m benchmarks.bench_sftp_hook [--sizes-mib 32 256]

1. 100 sequential operations, each through a new hook instance: pooled vs stock.
2. Readiness of 1,000 files: list_ready_files (one wait) vs the seed's stat, sleep 1.2 s, stat per file
   (measured on 5 files, extrapolated to 1,000).
3. Upload and download of one large random file: PooledSFTPHook vs the stock hook (compression on,
   its default) vs the `sftp` command line, in one run; Python heap peak (tracemalloc, in a second,
   untimed run) per transfer, at two file sizes to show the peak does not grow with the file.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="outamation-bench-home-"))

from airflow.providers.sftp.hooks.sftp import SFTPHook

from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.testing.openssh_server import OpenSshServer

CONN_ID = "outamation_bench"
SEED_DELAY = 1.2


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def bench_pooling(server: OpenSshServer, base: str) -> None:
    server.write(f"{base}/a.pdf")
    rows = []
    for name, hook_class in (("PooledSFTPHook", PooledSFTPHook), ("SFTPHook (stock)", SFTPHook)):
        before = server.connections_opened()
        seconds = timed(
            lambda cls=hook_class: [
                cls(ssh_conn_id=CONN_ID).get_mod_time(f"{base}/a.pdf") for _ in range(100)
            ]
        )
        rows.append((name, seconds, server.connections_opened() - before))
    print("\n1. 100 sequential get_mod_time calls, a new hook instance for each")
    print("| hook | seconds | ms/op | SSH connections |")
    print("|---|---:|---:|---:|")
    for name, seconds, opened in rows:
        print(f"| {name} | {seconds:.2f} | {seconds * 10:.1f} | {opened} |")
    print(f"speed-up: {rows[1][1] / rows[0][1]:.0f}x")


def bench_readiness(server: OpenSshServer, base: str) -> None:
    directory = f"{base}/input"
    for i in range(1000):
        server.write(f"{directory}/doc{i:04}.pdf", b"%PDF-1.7 ready")
    hook = PooledSFTPHook(ssh_conn_id=CONN_ID)
    hook.list_directory(directory)  # warm the pool
    ready: list[object] = []
    batched = timed(lambda: ready.extend(hook.list_ready_files(directory, stability_delay=SEED_DELAY)))
    sample = [f"{directory}/doc{i:04}.pdf" for i in range(5)]
    seed = timed(lambda: [hook.is_file_fully_uploaded(path, delay=SEED_DELAY) for path in sample])
    print("\n2. Readiness of 1,000 files (stability delay 1.2 s)")
    print("| way | seconds for 1,000 files |")
    print("|---|---:|")
    print(f"| list_ready_files (two listings, one wait) | {batched:.2f} ({len(ready)} ready) |")
    print(f"| seed: stat, sleep 1.2 s, stat per file | {seed / 5 * 1000:.0f} (5 took {seed:.1f} s, x200) |")


def sftp_cli(server: OpenSshServer, commands: str, work: Path) -> float:
    known_hosts = work / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{server.port} {server.host_key_line}\n")
    batch = work / "batch"
    batch.write_text(commands + "\n")
    args = [
        "sftp", "-q", "-b", str(batch), "-i", server.client_key_path, "-P", str(server.port),
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", f"{server.username}@127.0.0.1",
    ]  # fmt: skip
    return timed(lambda: subprocess.run(args, check=True, capture_output=True))


def measured(action: Callable[[], object]) -> tuple[float, float]:
    """Seconds of ``action``, then its Python heap peak (MiB) in a second run under tracemalloc."""
    seconds = timed(action)
    tracemalloc.start()
    action()
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def bench_transfers(server: OpenSshServer, base: str, size_mib: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="outamation-bench-"))
    local = work / "big.pdf"
    with local.open("wb") as handle:
        for _ in range(size_mib):
            handle.write(os.urandom(2**20))
    remote_dir = f"{base}/transfer"
    server.makedirs(remote_dir)
    hook = PooledSFTPHook(ssh_conn_id=CONN_ID)
    stock = SFTPHook(ssh_conn_id=CONN_ID)
    results: dict[str, tuple[float, float]] = {}
    results["up: sftp CLI"] = (sftp_cli(server, f"put {local} {remote_dir}/cli.pdf", work), 0.0)
    results["up: PooledSFTPHook.upload_to_folder"] = measured(
        lambda: hook.upload_to_folder(str(local), remote_dir, overwrite=True)
    )
    results["up: stock SFTPHook.store_file (compression on)"] = measured(
        lambda: stock.store_file(f"{remote_dir}/stock.pdf", str(local))
    )
    results["down: sftp CLI"] = (sftp_cli(server, f"get {remote_dir}/big.pdf {work}/cli_down.pdf", work), 0.0)
    downloaded: list[str] = []
    results["down: PooledSFTPHook.download_to_temp"] = measured(
        lambda: downloaded.append(hook.download_to_temp(f"{remote_dir}/big.pdf"))
    )
    results["down: stock SFTPHook.retrieve_file (compression on)"] = measured(
        lambda: stock.retrieve_file(f"{remote_dir}/big.pdf", str(work / "stock_down.pdf"))
    )
    assert all(Path(path).read_bytes() == local.read_bytes() for path in downloaded)
    print(f"\n3. Transfer of a {size_mib} MiB random file to and from sshd on loopback")
    print("| transfer | seconds | MB/s | vs sftp CLI | Python heap peak MiB |")
    print("|---|---:|---:|---:|---:|")
    for name, (seconds, peak) in results.items():
        cli = results["up: sftp CLI" if name.startswith("up") else "down: sftp CLI"][0]
        mb_s = size_mib * 2**20 / 1e6 / seconds
        print(f"| {name} | {seconds:.2f} | {mb_s:.0f} | {cli / seconds:.2f}x | {peak:.1f} |")
    for path in downloaded:
        shutil.rmtree(Path(path).parent)
    for path in work.iterdir():
        path.unlink()
    work.rmdir()


def main() -> None:
    for noisy in ("paramiko", "asyncssh"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes-mib", type=int, nargs="+", default=[32, 256])
    args = parser.parse_args()
    with OpenSshServer() as server:
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = server.connection_json()
        bench_pooling(server, server.remote_path("pool"))
        bench_readiness(server, server.remote_path("ready"))
        for size_mib in args.sizes_mib:
            bench_transfers(server, server.remote_path(f"bulk{size_mib}"), size_mib)
    PooledSFTPHook.close_all()


if __name__ == "__main__":
    sys.exit(main())
