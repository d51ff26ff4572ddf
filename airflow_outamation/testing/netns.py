"""
A private network namespace for servers that must be unreachable from 127.0.0.1 (root only).

A jump-host test starts the target sshd inside one: its 127.0.0.1 is not the test's, so only a
process inside the namespace (the jump sshd) reaches it. :meth:`NetworkNamespace.run` runs a
function in a thread that entered the namespace: sockets it creates and processes it starts live there.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from airflow_outamation.testing.processes import end_process

T = TypeVar("T")

#: ``setns(2)``'s flag for a network namespace.
CLONE_NEWNET = 0x40000000


def namespaces_available() -> bool:
    """Whether this process may create and enter network namespaces (root, ``unshare`` installed)."""
    return os.geteuid() == 0 and os.access("/usr/bin/unshare", os.X_OK)


class NetworkNamespace:
    """A new network namespace with its loopback up, held open by a sleeping ``unshare --net`` process."""

    def __init__(self) -> None:
        self._holder: subprocess.Popen[bytes] | None = None
        self._fd = -1

    def start(self) -> NetworkNamespace:
        """Create the namespace and bring its loopback interface up."""
        own = os.readlink("/proc/self/ns/net")
        self._holder = subprocess.Popen(["unshare", "--net", "sleep", "infinity"], start_new_session=True)
        path = Path(f"/proc/{self._holder.pid}/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(path) == own:  # unshare has not switched yet
            if time.monotonic() > deadline or self._holder.poll() is not None:
                raise RuntimeError("unshare --net did not create a network namespace")
            time.sleep(0.01)
        self._fd = os.open(path, os.O_RDONLY)
        self.run(lambda: subprocess.run(["ip", "link", "set", "lo", "up"], check=True))
        return self

    def run(self, function: Callable[[], T]) -> T:
        """Call ``function`` in a thread inside the namespace and return its result (or raise its error)."""
        outcome: list[T] = []
        failure: list[BaseException] = []

        def inside() -> None:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(self._fd, CLONE_NEWNET) != 0:
                failure.append(OSError(ctypes.get_errno(), "setns into the network namespace failed"))
                return
            try:
                outcome.append(function())
            except BaseException as exc:
                failure.append(exc)

        thread = threading.Thread(target=inside, name="in-network-namespace")
        thread.start()
        thread.join()
        if failure:
            raise failure[0]
        return outcome[0]

    def close(self) -> None:
        """Let the namespace go (once nothing else runs in it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._holder is not None:
            end_process(self._holder)
            self._holder = None

    def __enter__(self) -> NetworkNamespace:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
