"""An asyncio event loop in a daemon thread, so synchronous code can use the asyncssh hook."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """
    One event loop, started on first use in a daemon thread; coroutines from any thread run on it.

    A forked child (Airflow's task runner forks) starts its own loop: the parent's thread does not
    exist there.

    :param name: the thread's name
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    @property
    def started(self) -> bool:
        """Whether this process's loop is running."""
        return self._loop is not None and self._pid == os.getpid()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and return its result (or raise its exception) in this thread."""
        return asyncio.run_coroutine_threadsafe(coro, self._get_loop()).result()

    def _get_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if not self.started:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name=self.name, daemon=True).start()
                self._loop, self._pid = loop, os.getpid()
            assert self._loop is not None
            return self._loop
