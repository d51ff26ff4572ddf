"""ReadyFilesTrigger: wait in the triggerer until fully uploaded files sit in an SFTP folder."""

from __future__ import annotations

import posixpath
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_outamation import exceptions, metrics
from airflow_outamation.assets import EVENT_FILES_LISTED
from airflow_outamation.batching import name_list
from airflow_outamation.hooks.sftp_errors import unreachable_error
from airflow_outamation.readiness import (
    Listing,
    ReadinessSettings,
    RemoteFile,
    StabilityTracker,
    waiting_files,
)
from airflow_outamation.ready_summary import ready_summary, sensor_xcom
from airflow_outamation.triggers.directory_polls import Failed, FolderWatch

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

    :param pattern: the watched names (a pattern, or ``regex <expression>``)
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


class ReadyFilesTrigger(FolderWatch, BaseTrigger):
    """
    Fire once ``directory`` holds files that finished uploading, passing on up to ``max_files`` of them.

    Each poll is one directory read over a pooled connection shared with every other trigger on
    the same connection (:func:`~airflow_outamation.triggers.directory_polls.poll_directory`). The
    previous listing is kept, so a file unchanged across two polls at least ``stability_delay``
    apart is ready without an extra wait; readiness is decided by
    :mod:`airflow_outamation.readiness`, as in the sync hook. Transient failures are
    retried with backoff; permanent ones (credentials, host key, missing directory) end the
    trigger with an ``error`` event. Files that are ready while others wait (arrived too recently,
    still growing, not old enough) are passed on one look later, with those then ready: a drop is
    taken by one run rather than split over two (it costs one ``stability_delay``, once). At
    ``deadline`` it polls a last time and ends with a
    ``timeout`` event saying whether the server answered, so an outage is not taken for an
    empty folder. A ``success`` event carries :func:`~airflow_outamation.ready_summary.ready_summary`
    (count, first names, digest), so its size does not grow with the number of files. With
    ``end_from_trigger`` the task ends here instead: a ``TaskSuccessEvent`` whose XCom is that summary
    with the readiness settings, what :class:`~airflow_outamation.sensors.sftp.ReadyFilesSensor` would
    return, so no worker starts the task again only to return it.

    :param sftp_conn_id: Airflow ``sftp`` connection
    :param directory: remote directory to watch
    :param max_files: most files one event lists (the first by name); ``None`` for all
    :param poke_interval: seconds between polls while nothing is pending
    :param deadline: Unix time at which the wait ends with a ``timeout`` event that says whether
        the server was reachable (``None`` waits until files are ready or the triggerer times out)
    :param settings: which files are ready; with ``readiness``, see :class:`FolderWatch`
    :param end_from_trigger: end the deferred task with success on ready files, instead of resuming it
    """

    def __init__(
        self,
        sftp_conn_id: str,
        directory: str,
        max_files: int | None = None,
        poke_interval: float = 5.0,
        deadline: float | None = None,
        settings: ReadinessSettings | Mapping[str, Any] | None = None,
        end_from_trigger: bool = False,
        **readiness: Any,
    ) -> None:
        super().__init__()
        self._watch(sftp_conn_id, directory, max_files, poke_interval, settings, readiness)
        self.deadline = deadline
        self.end_from_trigger = end_from_trigger

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and arguments, from which the triggerer rebuilds this trigger."""
        return (
            f"{self.__class__.__module__}.{self.__class__.__name__}",
            {**self._watch_kwargs(), "deadline": self.deadline, "end_from_trigger": self.end_from_trigger},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until files are ready (``success``), a permanent error (``error``) or the deadline."""
        settings = self.settings
        self.log.info(
            "Waiting for %s in %s every %g s (a file is ready once unchanged for %g s)",
            settings.names,
            self.directory,
            self.poke_interval,
            settings.stability_delay,
        )
        tracker = StabilityTracker(self.directory, settings)
        previous: Listing | None = None
        progress = ""
        held = False  # files were ready while others arrived: passed on at the next look, whatever comes
        unreachable_since: float | None = None
        last_failure: Failed | None = None
        async for polled in self.polls(until=self.deadline):
            if isinstance(polled, Failed) and polled.permanent:
                error = polled.error
                self.log.error("Stopped waiting for files in %s: %s", self.directory, error)
                failure = {"error_type": type(error).__name__, "message": str(error)}
                yield TriggerEvent({"status": "error", **failure})
                return
            if isinstance(polled, Failed):
                unreachable_since = unreachable_since or time.time()
                last_failure = polled
                self.log.warning(
                    "Transient SFTP failure (attempt %d), retrying in %.1f s: %s",
                    polled.attempt,
                    polled.retry_in,
                    polled.error,
                )
            else:
                unreachable_since = None
                ready = tracker.observe(polled.listing, polled.started, polled.finished, time.time())
                growing, settling = waiting_files(previous, polled.listing, settings)
                passed_on = {file.path for file in ready or ()}
                waiting = sum(
                    posixpath.join(self.directory, name) not in passed_on for name in growing + settling
                )
                if ready and (held or not waiting):
                    yield self._success(ready)
                    return
                if ready:  # a drop still arriving: one more look, so that it goes to one run, not two
                    held = True
                    self.log.info(
                        "%d file(s) ready in %s, %d more arriving: passing them on after one more look",
                        len(ready),
                        self.directory,
                        waiting,
                    )
                line = progress_line(settings.names, self.directory, self.poke_interval, 0, growing, settling)
                if line != progress:  # only what changed, not every poll
                    self.log.info(line)
                    progress = line
                previous = polled.listing
            if self.deadline is not None and time.time() >= self.deadline:
                yield self._timeout(unreachable_since, last_failure)
                return

    def _timeout(self, unreachable_since: float | None, last_failure: Failed | None) -> TriggerEvent:
        """The deadline's event: whether the server answered at the end, and for how long it had not."""
        if unreachable_since is None or last_failure is None:
            message = f"no ready file in {self.directory} before the deadline"
            self.log.info(message)
            return TriggerEvent({"status": "timeout", "reachable": True, "message": message})
        unreachable_for = time.time() - unreachable_since
        error = unreachable_error(self.directory, last_failure.location, unreachable_for, last_failure.error)
        message = str(error)
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
        summary = ready_summary(self.directory, files, EVENT_FILES_LISTED)
        if self.end_from_trigger:
            task_instance = getattr(self, "task_instance", None)
            project = str(task_instance.dag_id) if task_instance is not None else metrics.NO_PROJECT
            metrics.count(metrics.FILES_READY, len(files), project)
            return TaskSuccessEvent(xcoms={"return_value": sensor_xcom(summary, self.settings)})
        return TriggerEvent(
            {"status": "success", **summary, "message": f"{len(files)} ready file(s) in {self.directory}"}
        )


def error_from_event(event: dict[str, Any]) -> exceptions.OutamationError:
    """The exception an ``error`` event stands for: its original type when it is one of this package's."""
    error_type = getattr(exceptions, str(event.get("error_type")), None)
    if isinstance(error_type, type) and issubclass(error_type, exceptions.OutamationError):
        return error_type(event["message"])
    return exceptions.OutamationError(event["message"])
