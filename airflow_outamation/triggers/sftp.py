"""ReadyFilesTrigger: wait in the triggerer until fully uploaded files sit in an SFTP folder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_outamation import exceptions
from airflow_outamation.assets import EVENT_FILES_LISTED
from airflow_outamation.batching import name_list
from airflow_outamation.exceptions import SFTPConnectError
from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync
from airflow_outamation.hooks.sftp_errors import SFTPLocation, unreachable_error
from airflow_outamation.polling import retry_delay
from airflow_outamation.readiness import FileState, RemoteFile, StabilityTracker, is_candidate, waiting_files
from airflow_outamation.ready_summary import ready_summary

__all__ = ["ReadyFilesTrigger", "error_from_event"]


def progress_line(
    pattern: str,
    directory: str,
    interval: float,
    ready: int,
    growing: list[str] | None = None,
    settling: list[str] | None = None,
) -> str:
    """
    ``Waiting for *.pdf in /in every 30 s: 0 ready, 1 still growing (x.pdf)``: a wait's state, for logs.

    :param pattern: the watched pattern
    :param directory: the watched folder
    :param interval: seconds between looks
    :param ready: how many files are ready
    :param growing: names of the files still being written (new or changed since the last look)
    :param settling: names of the unchanged files not ready yet (not stable or old enough so far)
    """
    line = f"Waiting for {pattern} in {directory} every {interval:g} s: {ready} ready"
    if growing:
        line += f", {len(growing)} still growing ({name_list(growing)})"
    if settling:
        line += f", {len(settling)} settling ({name_list(settling)})"
    return line


class ReadyFilesTrigger(BaseTrigger):
    """
    Fire once ``directory`` holds files that finished uploading, passing on up to ``max_files`` of them.

    Each poll is one directory read over a pooled connection shared with every other trigger on
    the same connection. The previous listing is kept, so a file unchanged across two polls at
    least ``stability_delay`` apart is ready without an extra wait; readiness is decided by
    :func:`airflow_outamation.readiness.ready_files`, as in the sync hook. Transient failures are
    retried with backoff; permanent ones (credentials, host key, missing directory) end the
    trigger with an ``error`` event. At ``deadline`` it polls a last time and ends with a
    ``timeout`` event saying whether the server answered, so an outage is not taken for an
    empty folder. A ``success`` event carries :func:`~airflow_outamation.ready_summary.ready_summary`
    (count, first names, digest), so its size does not grow with the number of files.

    :param sftp_conn_id: Airflow ``sftp`` connection
    :param directory: remote directory to watch
    :param pattern: case-insensitive glob the file names must match
    :param stability_delay: seconds a file's size and mtime must stay unchanged
    :param min_age: seconds since its last modification a file must have
    :param min_size: smallest size in bytes that counts
    :param max_files: most files one event lists (the first by name); ``None`` for all
    :param poke_interval: seconds between polls while nothing is pending
    :param deadline: Unix time at which the wait ends with a ``timeout`` event that says whether
        the server was reachable (``None`` waits until files are ready or the triggerer times out)
    """

    def __init__(
        self,
        sftp_conn_id: str,
        directory: str,
        pattern: str = "*.pdf",
        stability_delay: float = 1.2,
        min_age: float = 0,
        min_size: int = 1,
        max_files: int | None = None,
        poke_interval: float = 5.0,
        deadline: float | None = None,
    ) -> None:
        super().__init__()
        self.sftp_conn_id = sftp_conn_id
        self.directory = directory
        self.pattern = pattern
        self.stability_delay = stability_delay
        self.min_age = min_age
        self.min_size = min_size
        self.max_files = max_files
        self.poke_interval = poke_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and arguments, from which the triggerer rebuilds this trigger."""
        return (
            f"{self.__class__.__module__}.{self.__class__.__name__}",
            {
                "sftp_conn_id": self.sftp_conn_id,
                "directory": self.directory,
                "pattern": self.pattern,
                "stability_delay": self.stability_delay,
                "min_age": self.min_age,
                "min_size": self.min_size,
                "max_files": self.max_files,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
            },
        )

    def _has_pending(self, listing: dict[str, FileState]) -> bool:
        """Whether a file that may become ready (name, type and size fit) is in the listing."""
        return any(is_candidate(name, state, self.pattern, self.min_size) for name, state in listing.items())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until files are ready (``success``), a permanent error (``error``) or the deadline."""
        hook = PooledSFTPHookAsync(sftp_conn_id=self.sftp_conn_id)
        self.log.info(
            "Waiting for %s in %s every %g s (a file is ready once unchanged for %g s)",
            self.pattern,
            self.directory,
            self.poke_interval,
            self.stability_delay,
        )
        tracker = StabilityTracker(
            self.directory, self.stability_delay, self.pattern, self.min_size, self.min_age
        )
        previous: dict[str, FileState] | None = None
        progress = ""
        failures = 0
        unreachable_since: float | None = None
        last_failure: SFTPConnectError | None = None
        while True:
            started = time.monotonic()
            try:
                listing = await hook.list_directory_states(self.directory)
            except SFTPConnectError as exc:
                failures += 1
                unreachable_since = unreachable_since or time.time()
                last_failure = exc
                delay = retry_delay(self.poke_interval, failures)
                self.log.warning(
                    "Transient SFTP failure (attempt %d), retrying in %.1f s: %s", failures, delay, exc
                )
            except Exception as exc:
                self.log.error("Stopped waiting for files in %s: %s", self.directory, exc)
                yield TriggerEvent({"status": "error", "error_type": type(exc).__name__, "message": str(exc)})
                return
            else:
                failures, unreachable_since = 0, None
                ready = tracker.observe(listing, started, time.monotonic(), time.time())
                if ready:
                    yield self._success(ready)
                    return
                growing, settling = waiting_files(previous, listing, self.pattern, self.min_size)
                line = progress_line(self.pattern, self.directory, self.poke_interval, 0, growing, settling)
                if line != progress:  # only what changed, not every poll
                    self.log.info(line)
                    progress = line
                previous = listing
                pending = self._has_pending(listing)
                delay = min(self.poke_interval, self.stability_delay) if pending else self.poke_interval
            if self.deadline is not None and time.time() >= self.deadline:
                yield self._timeout(hook.location, unreachable_since, last_failure)
                return
            await asyncio.sleep(self._until_next_poll(delay))

    def _until_next_poll(self, delay: float) -> float:
        """``delay``, shortened so that the last poll happens at the deadline."""
        if self.deadline is None:
            return delay
        return max(0.0, min(delay, self.deadline - time.time()))

    def _timeout(
        self, where: SFTPLocation, unreachable_since: float | None, last_failure: SFTPConnectError | None
    ) -> TriggerEvent:
        """The deadline's event: whether the server answered at the end, and for how long it had not."""
        if unreachable_since is None:
            message = f"no ready file in {self.directory} before the deadline"
            self.log.info(message)
            return TriggerEvent({"status": "timeout", "reachable": True, "message": message})
        unreachable_for = time.time() - unreachable_since
        message = str(unreachable_error(self.directory, where, unreachable_for, last_failure))
        self.log.error(message)
        return TriggerEvent(
            {
                "status": "timeout",
                "reachable": False,
                "unreachable_for": unreachable_for,
                "error_type": "SFTPConnectError",
                "message": message,
            }
        )

    def _success(self, ready: list[RemoteFile]) -> TriggerEvent:
        files = ready[: self.max_files] if self.max_files else ready
        self.log.info("%d ready file(s) in %s, passing on %d", len(ready), self.directory, len(files))
        return TriggerEvent(
            {
                "status": "success",
                **ready_summary(self.directory, files, EVENT_FILES_LISTED),
                "message": f"{len(files)} ready file(s) in {self.directory}",
            }
        )


def error_from_event(event: dict[str, Any]) -> exceptions.OutamationError:
    """The exception an ``error`` event stands for: its original type when it is one of this package's."""
    error_type = getattr(exceptions, str(event.get("error_type")), None)
    if isinstance(error_type, type) and issubclass(error_type, exceptions.OutamationError):
        return error_type(event["message"])
    return exceptions.OutamationError(event["message"])
