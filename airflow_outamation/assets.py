"""The Assets the ingestion DAGs update, importable by the DAGs scheduled on them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import Asset, AssetWatcher

if TYPE_CHECKING:
    from airflow.triggers.base import BaseEventTrigger

#: File names an in_progress asset event lists at most (``file_count`` has them all).
EVENT_FILES_LISTED = 100


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
        :class:`~airflow_outamation.triggers.sftp.ReadyFilesEventTrigger`
    """
    name = f"outamation_ready_files_{project_id}"
    return Asset(
        name=name,
        uri=f"outamation://{project_id}/input",
        watchers=[AssetWatcher(name=name, trigger=trigger)],
    )
