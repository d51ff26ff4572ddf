"""
The polling loop of the ready-files triggers: list an SFTP folder again and again, at the right pace.

Both :class:`~airflow_outamation.triggers.sftp.ReadyFilesTrigger` and
:class:`~airflow_outamation.triggers.sftp_event.ReadyFilesEventTrigger` consume :func:`poll_directory`;
what they make of each listing (readiness, announcements, events) is theirs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_outamation.exceptions import SFTPConnectError
from airflow_outamation.hooks.sftp_async import PooledSFTPHookAsync
from airflow_outamation.hooks.sftp_errors import SFTPLocation
from airflow_outamation.polling import PERMANENT_RETRY_DELAY, retry_delay
from airflow_outamation.readiness import Listing, ReadinessSettings, waiting_files


@dataclass(frozen=True)
class Listed:
    """One successful poll: the listing, and when it was requested and received (monotonic)."""

    listing: Listing
    started: float
    finished: float


@dataclass(frozen=True)
class Failed:
    """One failed poll: the error, where, whether it can heal by itself, and the wait before the next."""

    error: Exception
    location: SFTPLocation
    permanent: bool
    attempt: int
    retry_in: float


async def poll_directory(
    sftp_conn_id: str,
    directory: str,
    settings: ReadinessSettings,
    poke_interval: float,
    until: float | None = None,
) -> AsyncIterator[Listed | Failed]:
    """
    Poll ``directory`` forever, yielding each listing or failure; never raise for SFTP errors.

    Polls every ``poke_interval`` seconds, every ``stability_delay`` while a candidate file is new
    or still growing. After a failure it waits with backoff (transient: the connection) or
    :data:`~airflow_outamation.polling.PERMANENT_RETRY_DELAY` (credentials, host key, missing folder).

    :param sftp_conn_id: Airflow ``sftp`` connection
    :param directory: remote directory to list
    :param settings: the readiness settings (which files are candidates, the stability delay)
    :param poke_interval: seconds between polls while no file is new or growing
    :param until: Unix time of a last poll: no wait runs past it (``None``: no limit)
    """
    hook = PooledSFTPHookAsync(sftp_conn_id=sftp_conn_id)
    previous: Listing = {}
    failures = 0
    while True:
        started = time.monotonic()
        try:
            listing = await hook.list_directory_states(directory, settings.recursive)
        except Exception as exc:  # a loop that raised would be restarted at once: no tight loop
            failures += 1
            permanent = not isinstance(exc, SFTPConnectError)
            delay = PERMANENT_RETRY_DELAY if permanent else retry_delay(poke_interval, failures)
            yield Failed(exc, hook.location, permanent, failures, delay)
        else:
            failures = 0
            yield Listed(listing, started, time.monotonic())
            growing, _ = waiting_files(previous, listing, settings)
            delay = min(poke_interval, settings.stability_delay) if growing else poke_interval
            previous = listing
        if until is not None:
            delay = max(0.0, min(delay, until - time.time()))
        await asyncio.sleep(delay)


class FolderWatch:
    """
    What both ready-files triggers share: the folder, its readiness settings, the cap and the cadence.

    ``settings`` is a :class:`~airflow_outamation.readiness.ReadinessSettings` or its dict (default:
    the defaults). A trigger also takes single
    settings as keyword arguments (``pattern="*.txt"``, ``readiness``), which override ``settings``:
    triggers serialized by earlier versions carry them so.
    """

    sftp_conn_id: str
    directory: str
    settings: ReadinessSettings
    max_files: int | None
    poke_interval: float

    def _watch(
        self,
        sftp_conn_id: str,
        directory: str,
        max_files: int | None,
        poke_interval: float,
        settings: ReadinessSettings | Mapping[str, Any] | None,
        readiness: Mapping[str, Any],
    ) -> None:
        """Keep the shared arguments; ``readiness`` (single settings) overrides those of ``settings``."""
        self.sftp_conn_id = sftp_conn_id
        self.directory = directory
        self.settings = ReadinessSettings.of(settings, **readiness)
        self.max_files = max_files
        self.poke_interval = poke_interval

    def _watch_kwargs(self) -> dict[str, Any]:
        """The shared arguments as :meth:`serialize` gives them."""
        return {
            "sftp_conn_id": self.sftp_conn_id,
            "directory": self.directory,
            "settings": self.settings.serialize(),
            "max_files": self.max_files,
            "poke_interval": self.poke_interval,
        }

    def polls(self, until: float | None = None) -> AsyncIterator[Listed | Failed]:
        """This folder's :func:`poll_directory`."""
        return poll_directory(self.sftp_conn_id, self.directory, self.settings, self.poke_interval, until)
