"""
Pure rules of the polling triggers, no I/O: how long to wait after failures, and which ready files
an event trigger announces so that each file starts one run, not one per poll.
"""

from __future__ import annotations

import posixpath
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_outamation.readiness import Listing, RemoteFile

#: Longest wait between two attempts after transient failures (dropped connection, restart).
MAX_RETRY_DELAY = 60.0
#: Wait between two attempts while a failure cannot heal by itself (credentials, host key, missing
#: folder): slow, so that a misconfigured project does not hammer the server, yet picks up a fix.
PERMANENT_RETRY_DELAY = 120.0


def retry_delay(poke_interval: float, failures: int) -> float:
    """
    Backoff from ``poke_interval`` doubling up to :data:`MAX_RETRY_DELAY`, jittered to spread triggers out.

    :param poke_interval: seconds between polls while all is well
    :param failures: transient failures in a row (1 for the first)
    """
    return min(poke_interval * 2 ** (failures - 1), MAX_RETRY_DELAY) * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Announcement:
    """A ready file as it was announced: its identity (size, mtime) and when (epoch seconds)."""

    size: int
    mtime: float
    at: float


class Announcements:
    """
    Which ready files to announce, remembering what was announced so a file starts one run, not many.

    A ready file is announced when its identity (name, size, mtime) was not announced before, or
    was announced ``reannounce_after`` seconds ago and is still waiting (its run failed before
    claiming it, or the event was lost). A file that leaves the folder (claimed) or changes is
    forgotten. When runs claimed at least ``max_files`` files (their cap) and the claiming is over
    (a listing without further departures), the announced files left behind are announced again
    at once: a capped run leaves the rest of a backlog for the next run.

    :param reannounce_after: seconds after which a file still waiting is announced again
    :param max_files: most files one run claims (``None``: no cap)
    :param announced: what was announced before (e.g. before a triggerer restart), by file name
    :param directory: the watched folder: a file's name is its path under it (``sub/x.pdf`` when
        the folder is listed recursively), as the listings name it
    """

    def __init__(
        self,
        reannounce_after: float,
        max_files: int | None = None,
        announced: Mapping[str, Announcement] | None = None,
        *,
        directory: str,
    ) -> None:
        self.directory = directory
        self.reannounce_after = reannounce_after
        self.max_files = max_files
        self.announced: dict[str, Announcement] = dict(announced or {})
        self._claimed_in_episode = 0

    def select(self, listing: Listing, ready: Iterable[RemoteFile], now: float) -> list[RemoteFile]:
        """
        The ready files to announce now, sorted by name; records them as announced at ``now``.

        :param listing: the directory's current listing (name -> state), to see which files left
        :param ready: the files of ``listing`` that are ready
        :param now: the current time (epoch seconds)
        """
        gone = [
            name
            for name, seen in self.announced.items()
            if name not in listing or (listing[name].size, listing[name].mtime) != (seen.size, seen.mtime)
        ]
        for name in gone:
            del self.announced[name]
        leftovers_due = False
        if gone:
            self._claimed_in_episode += len(gone)
        elif self._claimed_in_episode:
            leftovers_due = self.max_files is not None and self._claimed_in_episode >= self.max_files
            self._claimed_in_episode = 0
        chosen = []
        for file in ready:
            name = posixpath.relpath(file.path, self.directory)
            seen = self.announced.get(name)
            if seen is None or leftovers_due or now - seen.at >= self.reannounce_after:
                self.announced[name] = Announcement(file.size, file.mtime, now)
                chosen.append(file)
        return sorted(chosen, key=lambda file: file.path)

    def to_json(self, limit: int) -> dict[str, Any]:
        """Up to ``limit`` announcements (the first by name) as JSON: name -> [size, mtime, at]."""
        first = sorted(self.announced.items())[:limit]
        return {name: [seen.size, seen.mtime, seen.at] for name, seen in first}

    @staticmethod
    def from_json(data: Any) -> dict[str, Announcement]:
        """Announcements stored by :meth:`to_json`; anything malformed is ignored (announced afresh)."""
        if not isinstance(data, dict):
            return {}
        announced = {}
        for name, value in data.items():
            numbers = isinstance(value, list) and all(isinstance(v, (int, float)) for v in value)
            if numbers and len(value) == 3:
                announced[str(name)] = Announcement(int(value[0]), float(value[1]), float(value[2]))
        return announced
