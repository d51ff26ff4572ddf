"""The Assets the ingestion DAGs update, importable by the DAGs scheduled on them."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult

from airflow.sdk import Asset, AssetWatcher

from airflow_outamation.name_text import path_of
from airflow_outamation.readiness import FileState, Listing

if TYPE_CHECKING:
    from airflow.triggers.base import BaseEventTrigger

#: File names an in_progress asset event lists at most (``file_count`` has them all).
EVENT_FILES_LISTED = 100
#: The folders of a project an ``outamation://<project_id>/<folder>`` Asset URI names.
URI_FOLDERS = ("/input", "/in_progress")


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """
    Check an ``outamation://`` Asset URI (registered in the provider info's ``asset-uris``).

    ``outamation://<project_id>/input`` is the input folder's watcher, ``.../in_progress`` the claims.

    :param uri: the URI, split, as Airflow passes it
    """
    if not uri.netloc:
        raise ValueError("An outamation:// URI names a project: outamation://<project_id>/<folder>")
    if uri.path not in URI_FOLDERS:
        raise ValueError(f"An outamation:// URI names one of the folders {', '.join(URI_FOLDERS)}")
    return uri


def in_progress_asset(project_id: str) -> Asset:
    """
    The Asset updated whenever files of ``project_id`` are claimed into its in_progress folder.

    Its events' ``extra`` holds ``in_progress`` (the dated folders), ``file_count`` and ``files``
    (the first :data:`EVENT_FILES_LISTED` names as uploaded). Schedule a DAG on it with
    ``schedule=[in_progress_asset("acme")]``.

    :param project_id: the project entry's ``project_id``
    """
    return Asset(name=f"outamation_in_progress_{project_id}", uri=f"outamation://{project_id}/in_progress")


def ready_files_asset(project_id: str, trigger: BaseEventTrigger) -> Asset:
    """
    The Asset of ``project_id``'s input folder, watched by ``trigger``: an event each time files are ready.

    A project with ``"schedule": "event"`` is scheduled on it. Its events' ``extra`` holds
    ``payload``: ``status`` (``ready``, or ``error`` when the folder cannot be read), ``file_count``
    and ``files``. Declare it in one DAG only (the project's): another DAG declaring the same
    Asset with other watchers would replace them.

    :param project_id: the project entry's ``project_id``
    :param trigger: the watcher's trigger, e.g. a
        :class:`~airflow_outamation.triggers.sftp_event.ReadyFilesEventTrigger`
    """
    name = f"outamation_ready_files_{project_id}"
    return Asset(
        name=name,
        uri=f"outamation://{project_id}/input",
        watchers=[AssetWatcher(name=name, trigger=trigger)],
    )


def announced_files(events: Iterable[Any], directory: str) -> Listing | None:
    """
    The files a watcher announced ready in ``directory``, from a run's triggering asset events.

    Each ``ready`` event of a :func:`ready_files_asset` watches one folder and lists its files
    (name, size, mtime) as it found them stable; a file announced twice counts as in the latest
    event. ``None`` when no event announced files in ``directory``, or one of them listed only part
    of its files: the run must then look for itself.

    :param events: asset events with an ``extra`` dict, e.g. the values of the context's
        ``triggering_asset_events``
    :param directory: the folder the run reads
    """
    listing: dict[str, FileState] = {}
    for event in sorted(events, key=lambda event: str(getattr(event, "timestamp", ""))):  # latest wins
        payload = (getattr(event, "extra", None) or {}).get("payload")
        if not isinstance(payload, dict) or payload.get("status") != "ready":
            continue
        if posixpath.normpath(str(payload.get("directory"))) != posixpath.normpath(directory):
            continue
        files = payload.get("files") or []
        if payload.get("file_count", len(files)) > len(files):
            return None
        for file in files:
            listing[posixpath.relpath(path_of(file), str(payload["directory"]))] = FileState(
                size=int(file["size"]), mtime=float(file["mtime"])
            )
    return listing or None
