"""
ReadyFilesEventTrigger: an AssetWatcher trigger announcing files that finished uploading to an SFTP folder.

The folder is polled by one loop per (connection, folder, readiness settings, cadence), shared by
every trigger that watches it (``shared_stream_key``), over connections pooled per SFTP connection
(:func:`~airflow_outamation.triggers.directory_polls.poll_directory`). Readiness is
:class:`~airflow_outamation.readiness.StabilityTracker`'s, as in
:class:`~airflow_outamation.triggers.sftp.ReadyFilesTrigger`; what to announce is
:class:`~airflow_outamation.polling.Announcements`'.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Hashable, Mapping
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_outamation.assets import EVENT_FILES_LISTED
from airflow_outamation.batching import name_list
from airflow_outamation.polling import Announcement, Announcements
from airflow_outamation.readiness import ReadinessSettings, StabilityTracker
from airflow_outamation.triggers.directory_polls import Failed, FolderWatch, Listed

#: Announcements kept in the asset's state store across triggerer restarts, at most.
STORED_ANNOUNCEMENTS = 1000
#: Key of the announcements in the watched asset's state store.
STATE_KEY = "announced_files"


class ReadyFilesEventTrigger(FolderWatch, BaseEventTrigger):
    """
    Fire each time files finish uploading to ``directory``: the event of an AssetWatcher.

    Polls every ``poke_interval`` seconds, every ``stability_delay`` while a file is new or still
    growing. Each ready file is announced once (its name, size and mtime), not once per poll while
    a run claims it; a file still there ``reannounce_after`` seconds after its announcement (its
    run failed before claiming it) is announced again, and so are files a run left behind because
    of its ``max_files`` cap. The announcements are kept in the watched asset's state store, so a
    restarted triggerer does not announce them again. Transient SFTP failures are retried with
    backoff; a permanent one (credentials, host key, missing folder) is logged naming project,
    server and folder, fires one ``error`` event (its run fails, showing the error in the UI) and is
    retried every :data:`~airflow_outamation.polling.PERMANENT_RETRY_DELAY` seconds.

    Events: ``{"status": "ready", "project_id", "directory", "file_count", "files"}`` (the first
    :data:`EVENT_FILES_LISTED` files as ``RemoteFile.to_dict()``) or ``{"status": "error",
    "project_id", "directory", "error_type", "message"}``.

    :param sftp_conn_id: Airflow ``sftp`` connection
    :param directory: remote directory to watch
    :param project_id: the project, named in logs and events
    :param max_files: most files one run claims (``None``: no cap), see above
    :param poke_interval: seconds between polls while no file is new or growing
    :param reannounce_after: seconds after which a ready file still in the folder is announced again
    :param settings: which files are ready; with ``readiness``, see :class:`FolderWatch`
    """

    def __init__(
        self,
        sftp_conn_id: str,
        directory: str,
        project_id: str | None = None,
        max_files: int | None = None,
        poke_interval: float = 5.0,
        reannounce_after: float = 600.0,
        settings: ReadinessSettings | Mapping[str, Any] | None = None,
        **readiness: Any,
    ) -> None:
        super().__init__()
        self._watch(sftp_conn_id, directory, max_files, poke_interval, settings, readiness)
        self.project_id = project_id
        self.reannounce_after = reannounce_after

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Classpath and arguments, from which the triggerer rebuilds this trigger."""
        return (
            f"{self.__class__.__module__}.{self.__class__.__name__}",
            {
                **self._watch_kwargs(),
                "project_id": self.project_id,
                "reannounce_after": self.reannounce_after,
            },
        )

    def shared_stream_key(self) -> Hashable:
        """Triggers polling the same folder the same way share one poll loop (it uses only these)."""
        return (
            "outamation-ready-files",
            self.sftp_conn_id,
            self.directory,
            self.settings,
            self.poke_interval,
        )

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Listed | Failed]:
        """
        Poll the folder forever: yield each listing or failure; never end, never raise for SFTP errors.

        :param kwargs: a trigger's :meth:`serialize` arguments (only those of the stream key are used)
        """
        async for polled in cls(**kwargs).polls():
            yield polled

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """Turn the folder's listings into this trigger's events (new ready files, first of an error)."""
        tracker = StabilityTracker(self.directory, self.settings)
        announcements = Announcements(
            self.reannounce_after, self.max_files, await self._load_announced(), directory=self.directory
        )
        stored = announcements.to_json(STORED_ANNOUNCEMENTS)
        reported: tuple[str, str] | None = None
        async for polled in shared_stream:
            if isinstance(polled, Failed):
                error = (type(polled.error).__name__, str(polled.error))
                self._log_failure(polled)
                if polled.permanent and error != reported:
                    reported = error
                    yield self._event("error", error_type=error[0], message=error[1])
                continue
            reported = None
            ready = tracker.observe(polled.listing, polled.started, polled.finished, time.time())
            if ready is None:
                continue
            announced = announcements.select(polled.listing, ready, time.time())
            if announced:
                self.log.info(
                    "Project %s: %d file(s) ready in %s: %s",
                    self.project_id,
                    len(announced),
                    self.directory,
                    name_list([file.filename for file in announced]),
                )
                yield self._event(
                    "ready",
                    file_count=len(announced),
                    files=[file.to_dict() for file in announced[:EVENT_FILES_LISTED]],
                )
            # Stored once the event is handed to the triggerer, which writes it to the database within
            # about a second; should it die in between, the file is announced again reannounce_after later.
            current = announcements.to_json(STORED_ANNOUNCEMENTS)
            if current != stored:
                await self._store_announced(current)
                stored = current

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll on its own (when the triggerer does not share the stream) with the same rules."""
        async for event in self.filter_shared_stream(self.open_shared_stream(self.serialize()[1])):
            yield event

    def _event(self, status: str, **details: Any) -> TriggerEvent:
        return TriggerEvent(
            {"status": status, "project_id": self.project_id, "directory": self.directory, **details}
        )

    def _log_failure(self, failed: Failed) -> None:
        """One line naming project, folder and server; an error when it cannot heal by itself."""
        message = str(failed.error)
        if str(failed.location) not in message:  # this package's errors name the server already
            message = f"{message} (on {failed.location})"
        if failed.permanent:
            self.log.error(
                "Project %s cannot watch %s: %s: %s; retrying in %.0f s",
                self.project_id,
                self.directory,
                type(failed.error).__name__,
                message,
                failed.retry_in,
            )
        else:
            self.log.warning(
                "Project %s: transient failure watching %s (attempt %d), retrying in %.1f s: %s",
                self.project_id,
                self.directory,
                failed.attempt,
                failed.retry_in,
                message,
            )

    async def _load_announced(self) -> dict[str, Announcement]:
        """The announcements stored before a restart; none when there is no single watched asset."""
        if self.asset_state_store is None:
            return {}
        try:
            return Announcements.from_json(await self.asset_state_store.aget(STATE_KEY))
        except Exception as exc:  # state is an optimisation: without it files are announced afresh
            self.log.warning("Project %s: announcements not restored (%s)", self.project_id, exc)
            return {}

    async def _store_announced(self, announced: dict[str, Any]) -> None:
        """Keep the announcements in the watched asset's state store, when there is one."""
        if self.asset_state_store is None:
            return
        try:
            if announced:
                await self.asset_state_store.aset(STATE_KEY, announced)
            else:
                await self.asset_state_store.adelete(STATE_KEY)
        except Exception as exc:
            self.log.warning("Project %s: announcements not stored (%s)", self.project_id, exc)
