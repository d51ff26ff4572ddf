"""Ending the server processes the test bed starts."""

from __future__ import annotations

import subprocess


def end_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """
    Stop a process: SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds.

    :param process: the running process
    :param timeout: seconds it gets to exit by itself
    """
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
