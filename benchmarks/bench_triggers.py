"""
Benchmark: 50 triggers on one SFTP connection polling every second for 30 s, in one event loop.

Compares ReadyFilesTrigger (pooled connections) with the SFTP provider's stock SFTPTrigger (a new
SSH connection per poll): SSH connections the server accepted, directory reads done, and CPU time of
the process running the event loop (the server is OpenSSH's sshd, a separate process; without sshd
the in-process asyncssh server is used and its CPU time is included). Run:
``.venv/bin/python -m benchmarks.bench_triggers [--triggers 50] [--seconds 30] [--interval 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="outamation-bench-"))

from airflow.providers.sftp.hooks.sftp import SFTPHookAsync
from airflow.providers.sftp.triggers.sftp import SFTPTrigger
from airflow.triggers.base import BaseTrigger

from airflow_outamation.hooks.sftp_async import DEFAULT_POOL_SIZE, PooledSFTPHookAsync
from airflow_outamation.testing.asyncssh_server import AsyncsshSftpServer
from airflow_outamation.testing.openssh_server import OpenSshServer, sshd_available
from airflow_outamation.testing.server_base import SftpTestServer
from airflow_outamation.triggers.sftp import ReadyFilesTrigger

CONN_ID = "outamation_bench_triggers"


class ReadCounter:
    """Counts calls of an async hook method (one call = one directory read)."""

    def __init__(self, owner: type, name: str) -> None:
        self.owner, self.name, self.calls = owner, name, 0
        self.original: Callable[..., Any] = getattr(owner, name)

    def __enter__(self) -> ReadCounter:
        original = self.original

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return await original(*args, **kwargs)

        setattr(self.owner, self.name, counted)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.owner, self.name, self.original)


async def poll_for(triggers: list[BaseTrigger], seconds: float) -> int:
    """Run the triggers concurrently for ``seconds``; return how many ended early (any event)."""

    async def first_event(trigger: BaseTrigger) -> bool:
        async for _ in trigger.run():
            return True
        return False

    tasks = [asyncio.create_task(first_event(trigger)) for trigger in triggers]
    done, pending = await asyncio.wait(tasks, timeout=seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await PooledSFTPHookAsync.close_all()
    return sum(1 for task in done if not task.cancelled() and task.result())


def measure(
    label: str,
    server: SftpTestServer,
    make: Callable[[str], BaseTrigger],
    counter: ReadCounter,
    triggers: int,
    seconds: float,
) -> dict[str, Any]:
    """Poll with ``triggers`` triggers made by ``make`` for ``seconds``; count connections, reads, CPU."""
    directories = [server.remote_path(f"bench-{label}/d{index:02}") for index in range(triggers)]
    for directory in directories:
        server.makedirs(directory)
        server.write(f"{directory}/still-uploading.pdf.part", b"%PDF")  # never ready: keeps polling
    opened = server.connections_opened()
    cpu, wall = time.process_time(), time.perf_counter()
    with counter:
        ended = asyncio.run(poll_for([make(directory) for directory in directories], seconds))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    time.sleep(0.5)  # let the server log the last connections
    return {
        "trigger": label,
        "ssh_connections": server.connections_opened() - opened,
        "directory_reads": counter.calls,
        "ended_early": ended,
        "cpu_s": cpu,
        "cpu_ms_per_read": 1000 * cpu / max(counter.calls, 1),
        "wall_s": wall,
    }


def main(args: argparse.Namespace) -> None:
    server: SftpTestServer = OpenSshServer().start() if sshd_available() else AsyncsshSftpServer().start()
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = server.connection_json()
    interval = args.interval
    try:
        print(
            f"{args.triggers} triggers, poll every {interval} s for {args.seconds} s, server {server.kind}, "
            f"pool size {DEFAULT_POOL_SIZE}"
        )
        results = [
            measure(
                "ReadyFilesTrigger",
                server,
                lambda d: ReadyFilesTrigger(CONN_ID, d, poke_interval=interval, stability_delay=interval),
                ReadCounter(PooledSFTPHookAsync, "list_directory_states"),
                args.triggers,
                args.seconds,
            ),
            measure(
                "SFTPTrigger",
                server,
                lambda d: SFTPTrigger(
                    path=d, file_pattern="*.pdf", sftp_conn_id=CONN_ID, poke_interval=interval
                ),
                ReadCounter(SFTPHookAsync, "read_directory"),
                args.triggers,
                args.seconds,
            ),
        ]
    finally:
        server.close()
    print("| trigger | SSH connections | directory reads | ended early | CPU s | CPU ms/read |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['trigger']} | {r['ssh_connections']} | {r['directory_reads']} | {r['ended_early']} "
            f"| {r['cpu_s']:.1f} | {r['cpu_ms_per_read']:.2f} |"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--triggers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--interval", type=float, default=1.0)
    main(parser.parse_args())
