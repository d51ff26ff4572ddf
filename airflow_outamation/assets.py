"""The Assets the ingestion DAGs update, importable by the DAGs scheduled on them."""

from __future__ import annotations

from airflow.sdk import Asset

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
