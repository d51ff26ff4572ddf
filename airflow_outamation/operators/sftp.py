"""ClaimFilesOperator: move ready files from the input folder into in_progress/<date>/, exactly once."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow.sdk import BaseOperator, Context, XComArg

from airflow_outamation.batching import as_limit
from airflow_outamation.claims import describe_skipped, intended_files, manifest_id_for
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.readiness import RemoteFile

__all__ = ["ClaimFilesOperator", "manifest_id_for", "run_date"]


def run_date(context: Context) -> datetime:
    """The run's date: its logical date, or when it was due (a manual run may have no logical date)."""
    logical_date = context.get("logical_date")
    return logical_date if logical_date is not None else context["dag_run"].run_after


class ClaimFilesOperator(BaseOperator):
    """
    Claim ready files: rename them from ``<base>/<source_dir>`` into ``<base>/<in_progress_dir>/<date>/``.

    The date comes from the DAG run (``date_format`` of its logical date, else of when it was due),
    so every retry and every task of the run use the same folder. The claim is recorded in a
    manifest named after the DAG run: a retried task, even after a crash mid-way, returns exactly
    the files of its first attempt, and a file raced for by another run is claimed by one only.
    Each file is handled on its own: a file the server refuses, or one that changed since the sensor
    found it ready (size or mtime), stays in the input folder and is logged with its reason; the
    others are claimed. See :func:`airflow_outamation.claims.claim`.

    :param sftp_conn_id: Airflow ``sftp`` connection
    :param base_path: the project's folder on the server (templated)
    :param files: the sensor's ready files (``RemoteFile`` dicts or paths; templated); when
        ``None`` the operator lists the ready files itself
    :param source_dir: input folder under ``base_path`` (templated)
    :param in_progress_dir: in-progress folder under ``base_path`` (templated)
    :param date_format: ``strftime`` format of the dated folder (templated; ``%m%d%Y`` as the seed)
    :param pattern: file pattern when listing ready files itself (templated)
    :param stability_delay: seconds between the two listings when listing ready files itself
    :param max_files: most files one run claims (the first by name; templated); the others stay in
        the input folder for the next run. ``None`` for no cap
    """

    template_fields: Sequence[str] = (
        "base_path",
        "files",
        "source_dir",
        "in_progress_dir",
        "date_format",
        "pattern",
        "max_files",
    )
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        sftp_conn_id: str,
        base_path: str,
        files: Sequence[Mapping[str, Any] | str] | XComArg | None = None,
        source_dir: str = "input",
        in_progress_dir: str = "in_progress",
        date_format: str = "%m%d%Y",
        pattern: str = "*.pdf",
        stability_delay: float = 1.2,
        max_files: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sftp_conn_id = sftp_conn_id
        self.base_path = base_path
        self.files = files
        self.source_dir = source_dir
        self.in_progress_dir = in_progress_dir
        self.date_format = date_format
        self.pattern = pattern
        self.stability_delay = stability_delay
        self.max_files = max_files

    def execute(self, context: Context) -> list[dict[str, Any]]:
        """Claim the files; return the claimed ones as ``ClaimedFile.to_dict()`` dicts."""
        hook = PooledSFTPHook(ssh_conn_id=self.sftp_conn_id)
        source = posixpath.join(self.base_path, self.source_dir)
        target = posixpath.join(
            self.base_path, self.in_progress_dir, run_date(context).strftime(self.date_format)
        )
        files: Sequence[RemoteFile | Mapping[str, Any] | str]
        if self.files is None:
            files = hook.list_ready_files(source, pattern=self.pattern, stability_delay=self.stability_delay)
        else:
            files = self.files  # type: ignore[assignment]  # rendered: an XComArg is resolved by now
        cap = as_limit(self.max_files)
        if cap is not None and len(files) > cap:
            files = intended_files(files)[:cap]
            self.log.info(
                "Claiming the first %d ready file(s) by name; the others wait for the next run", len(files)
            )
        manifest_id = manifest_id_for(context["dag_run"].dag_id, context["run_id"])
        result = hook.claim(files, target, manifest_id)
        self.log.info(
            "Claimed %d of %d file(s) from %s into %s", len(result.claimed), len(files), source, target
        )
        if result.skipped:
            self.log.warning("Skipped %d file(s): %s", len(result.skipped), describe_skipped(result.skipped))
        return [file.to_dict() for file in result.claimed]
