"""
Which files in a drop folder are ready: pure rules over two directory listings, no I/O.

A file is ready when it did not change between two listings taken at least the stability delay
apart (an uploader still writing changes its size or mtime), it is a regular file matching the
pattern, it is neither a dotfile nor a temporary upload name, and it is big and old enough.
The sync hook, the sensor's poke mode and the trigger all decide readiness here.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from airflow_outamation.name_text import path_fields, path_of

#: Which names count, by default (case-insensitive glob).
DEFAULT_PATTERN = "*.pdf"
#: Seconds a file's size and mtime must not change, by default.
DEFAULT_STABILITY_DELAY = 1.2
#: Seconds since a file's last modification it must have, by default.
DEFAULT_MIN_AGE = 0.0
#: Smallest size in bytes that counts, by default (1 rejects zero-byte files).
DEFAULT_MIN_SIZE = 1

#: Names uploaders give files while they are still being written.
TEMPORARY_NAME_PATTERNS: tuple[str, ...] = ("*.part", "*.filepart", "*.tmp", "~*", "*.crdownload")


@dataclass(frozen=True)
class FileState:
    """What one directory listing says about one entry."""

    size: int
    mtime: float
    is_regular: bool = True


@dataclass(frozen=True)
class RemoteFile:
    """A ready file on the SFTP server, as it is passed on through XCom."""

    path: str
    size: int
    mtime: float

    @property
    def filename(self) -> str:
        return posixpath.basename(self.path)

    def to_dict(self) -> dict[str, Any]:
        """
        A JSON-serialisable dict (``path``, ``filename``, ``size``, ``mtime``) for XCom.

        A path that is not UTF-8 gets a printable ``path`` and ``filename`` and its bytes in
        ``path_escaped`` (:func:`~airflow_outamation.name_text.path_fields`).
        """
        return {**asdict(self), **path_fields(self.path)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RemoteFile:
        return cls(path=path_of(data), size=int(data["size"]), mtime=float(data["mtime"]))


Listing = Mapping[str, FileState]


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` looks like a file an uploader is still writing (``*.part``, ``~*``, ...)."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in TEMPORARY_NAME_PATTERNS)


def matches_pattern(name: str, pattern: str) -> bool:
    """Case-insensitive glob match (``*.pdf`` matches ``A.PDF``)."""
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def is_candidate(name: str, state: FileState, pattern: str = "*.pdf", min_size: int = 1) -> bool:
    """Whether an entry could be ready at all, whatever its history: the name and type rules."""
    return (
        state.is_regular
        and not name.startswith(".")
        and not is_temporary_name(name)
        and matches_pattern(name, pattern)
        and state.size >= min_size
    )


def is_stable(before: FileState, after: FileState) -> bool:
    """Whether a file kept its size and modification time between two looks."""
    return before.size == after.size and before.mtime == after.mtime


def unannounced(listing: Listing, announced: Listing, pattern: str = "*.pdf", min_size: int = 1) -> list[str]:
    """
    The candidates of ``listing`` not in ``announced`` as they are now (new, or changed since), by name.

    :param listing: the directory's current listing
    :param announced: files found stable earlier, e.g. by a watcher (name -> state)
    :param pattern: case-insensitive glob the names must match
    :param min_size: smallest size in bytes that counts
    """
    return [
        name
        for name in sorted(listing)
        if is_candidate(name, listing[name], pattern, min_size)
        and not (name in announced and is_stable(announced[name], listing[name]))
    ]


def ready_files(
    directory: str,
    before: Listing,
    after: Listing,
    *,
    now: float,
    pattern: str = "*.pdf",
    min_size: int = 1,
    min_age: float = 0,
) -> list[RemoteFile]:
    """
    Files of ``after`` that are ready, sorted by name.

    :param directory: the listed directory, joined to each name to form ``RemoteFile.path``
    :param before: the earlier listing (name -> state)
    :param after: the later listing, at least the stability delay after ``before``
    :param now: the current time (epoch seconds), for ``min_age``
    :param pattern: case-insensitive glob the names must match
    :param min_size: smallest size in bytes that counts (1 rejects zero-byte files)
    :param min_age: seconds since the last modification a file must have
    """
    ready = []
    for name in sorted(after):
        state = after[name]
        previous = before.get(name)
        if previous is None or not is_stable(previous, state):
            continue
        if not is_candidate(name, state, pattern, min_size) or now - state.mtime < min_age:
            continue
        ready.append(RemoteFile(path=posixpath.join(directory, name), size=state.size, mtime=state.mtime))
    return ready


def waiting_files(
    previous: Listing | None, listing: Listing, pattern: str = "*.pdf", min_size: int = 1
) -> tuple[list[str], list[str]]:
    """
    The candidates of ``listing`` that are not passed on yet, by name: those still growing, the others.

    A candidate (see :func:`is_candidate`) is still growing when it is new or changed since ``previous``
    (every one is when there is no ``previous``); the others wait to be stable long or old enough.

    :param previous: the listing before ``listing``, if any
    :param listing: the latest listing
    :param pattern: case-insensitive glob the names must match
    :param min_size: smallest size in bytes that counts
    """
    growing: list[str] = []
    settling: list[str] = []
    for name in sorted(listing):
        state = listing[name]
        if not is_candidate(name, state, pattern, min_size):
            continue
        before = previous.get(name) if previous is not None else None
        (settling if before is not None and is_stable(before, state) else growing).append(name)
    return growing, settling


class StabilityTracker:
    """
    Decide readiness over a series of listings of one directory, as a polling trigger takes them.

    It keeps the last listing that may serve as the earlier look (a baseline), so a file unchanged
    across two polls at least ``stability_delay`` apart is ready without an extra wait.

    :param directory: the listed directory
    :param stability_delay: seconds a file's size and mtime must stay unchanged
    :param pattern: case-insensitive glob the names must match
    :param min_size: smallest size in bytes that counts
    :param min_age: seconds since the last modification a file must have
    """

    def __init__(
        self, directory: str, stability_delay: float, pattern: str, min_size: int, min_age: float
    ) -> None:
        self.directory = directory
        self.stability_delay = stability_delay
        self.pattern = pattern
        self.min_size = min_size
        self.min_age = min_age
        self._baseline: Listing | None = None
        self._baseline_at = 0.0

    def observe(
        self, listing: Listing, started: float, finished: float, now: float
    ) -> list[RemoteFile] | None:
        """
        The ready files of ``listing``; ``None`` when it came too soon after the baseline to tell.

        :param listing: the new listing
        :param started: monotonic time the listing was requested
        :param finished: monotonic time it was received (a later listing may compare with it from then)
        :param now: the current time (epoch seconds), for ``min_age``
        """
        if self._baseline is not None and started - self._baseline_at < self.stability_delay:
            return None
        ready: list[RemoteFile] = []
        if self._baseline is not None:
            ready = ready_files(
                self.directory,
                self._baseline,
                listing,
                now=now,
                pattern=self.pattern,
                min_size=self.min_size,
                min_age=self.min_age,
            )
        self._baseline, self._baseline_at = listing, finished
        return ready
