"""
A bounded summary of the ready files a sensor passes on, and how a claim finds them again: no I/O.

The summary holds how many files are ready, the first of them and a digest of them all (names,
sizes, mtimes), so its size does not grow with the number of files. The claim re-checks it against
one listing of the folder: the same files, unchanged, have the same digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_outamation.readiness import Listing, ReadinessSettings, RemoteFile, ready_files


def files_digest(files: Sequence[RemoteFile]) -> str:
    """SHA-256 of the files' names, sizes and mtimes in name order: equal for the same files, unchanged."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda file: file.filename):
        digest.update(f"{file.filename}\0{file.size}\0{file.mtime!r}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def ready_summary(directory: str, files: Sequence[RemoteFile], listed: int) -> dict[str, Any]:
    """
    ``{"directory", "file_count", "files", "digest"}``: ``files`` lists the first ``listed`` (``RemoteFile``).

    :param directory: the folder the files are in
    :param files: the ready files passed on, sorted by name
    :param listed: how many of them the summary lists
    """
    return {
        "directory": directory,
        "file_count": len(files),
        "files": [file.to_dict() for file in files[:listed]],
        "digest": files_digest(files),
    }


def sensor_xcom(summary: Mapping[str, Any], settings: ReadinessSettings) -> dict[str, Any]:
    """The sensor's XCom: ``summary`` with the settings the claim re-checks readiness with (``readiness``)."""
    return {**summary, "readiness": settings.serialize()}


def is_ready_summary(value: Any) -> bool:
    """Whether ``value`` is a :func:`ready_summary` (a sensor's XCom) rather than a list of files."""
    return isinstance(value, Mapping) and "digest" in value


def found_again(
    summary: Mapping[str, Any], directory: str, listing: Listing, now: float
) -> list[RemoteFile] | None:
    """
    The summary's files in ``listing`` of ``directory``: its first ``file_count`` ready-looking files by name.

    A file looks ready when it passes the summary's ``readiness`` settings
    (:class:`~airflow_outamation.readiness.ReadinessSettings`) in this one listing. ``None`` when
    these are not exactly the summary's files, unchanged (their digest differs): the folder changed
    since the summary was made, and readiness must be decided again.

    :param summary: a sensor's summary: :func:`ready_summary` with ``readiness``
    :param directory: the folder ``listing`` was read from
    :param listing: one listing of it (name -> state)
    :param now: the current time (epoch seconds), for ``min_age``
    """
    settings = ReadinessSettings.from_dict(summary["readiness"])
    candidates = ready_files(directory, listing, listing, now=now, settings=settings)
    files = candidates[: int(summary["file_count"])]
    return files if files_digest(files) == summary["digest"] else None
