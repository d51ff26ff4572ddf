"""ClaimFilesOperator: move ready files from the input folder into in_progress/<date>/, exactly once."""

from __future__ import annotations

import codecs
import json
import posixpath
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from airflow.sdk import Asset, BaseOperator, Context, XComArg
from airflow.sdk.exceptions import AirflowFailException

from airflow_outamation import lineage, metrics
from airflow_outamation.assets import EVENT_FILES_LISTED
from airflow_outamation.batching import as_limit, name_list
from airflow_outamation.claims import (
    ClaimedFile,
    claimed_files,
    describe_skipped,
    intended_files,
    manifest_id_for,
    manifest_path,
)
from airflow_outamation.claims.names import DEFAULT_NAME_ENCODING
from airflow_outamation.exceptions import SFTPPathError
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.name_text import printable
from airflow_outamation.readiness import (
    DEFAULT_PATTERN,
    DEFAULT_STABILITY_DELAY,
    ReadinessSettings,
    RemoteFile,
)
from airflow_outamation.ready_summary import found_again, is_ready_summary

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

__all__ = [
    "ClaimFilesOperator",
    "ProjectStatusOperator",
    "asset_event_extra",
    "claim_summary",
    "claimed_file_dicts",
    "manifest_id_for",
    "run_date",
]


def run_date(context: Context, timezone: str | None = None) -> datetime:
    """
    The run's date: its logical date, or when it was due (a manual run may have no logical date).

    :param context: the task's context
    :param timezone: IANA name of the zone to express the date in; as Airflow gives it (UTC) when ``None``
    """
    logical_date = context.get("logical_date")
    moment = logical_date if logical_date is not None else context["dag_run"].run_after
    return moment.astimezone(ZoneInfo(timezone)) if timezone else moment


def asset_event_extra(claimed: Sequence[ClaimedFile]) -> dict[str, Any]:
    """What a claim's asset event says: its dated folders, how many files and (some of) their names."""
    return {
        "in_progress": sorted({posixpath.dirname(file.backup_path) for file in claimed}),
        "file_count": len(claimed),
        "files": [posixpath.basename(file.source_path) for file in claimed[:EVENT_FILES_LISTED]],
    }


def claim_summary(
    claimed: Sequence[ClaimedFile], claim_dir: str, manifest_id: str, name_encoding: str
) -> dict[str, Any]:
    """
    What a claim puts in XCom: :func:`asset_event_extra` and where its record is, never the whole list.

    Its size does not grow with the number of files (at most ``EVENT_FILES_LISTED`` names); the
    tasks after the claim read its files from the record (:func:`claimed_file_dicts`).
    """
    return {
        **asset_event_extra(claimed),
        "claim_dir": claim_dir,
        "manifest_id": manifest_id,
        "name_encoding": name_encoding,
        "record": manifest_path(claim_dir, manifest_id),
    }


def claimed_file_dicts(
    claimed: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, sftp_conn_id: str | None
) -> list[dict[str, Any]]:
    """
    The claimed files as ``ClaimedFile.to_dict()`` dicts, from a claim's XCom: a summary or a list.

    A summary (:func:`claim_summary`) is read back from the claim's record on the server
    (:func:`~airflow_outamation.claims.claimed_files`); a list of file dicts, as claims returned
    before 0.4, is taken as it is.

    :raises ValueError: a summary but no ``sftp_conn_id`` to read its record with
    """
    if not claimed:
        return []
    if isinstance(claimed, Mapping):
        if sftp_conn_id is None:
            raise ValueError("the claim's summary needs sftp_conn_id to read its files from its record")
        files = PooledSFTPHook(ssh_conn_id=sftp_conn_id).run_on_sftp(
            claimed_files, claimed["claim_dir"], claimed["manifest_id"], claimed["name_encoding"]
        )
        return [file.to_dict() for file in files]
    return [dict(file) for file in claimed]


class ClaimFilesOperator(BaseOperator):
    """
    Claim ready files: rename them from ``<base>/<source_dir>`` into ``<base>/<in_progress_dir>/<date>/``.

    The date comes from the DAG run (``date_format`` of its logical date, else of when it was due),
    so every retry and every task of the run use the same folder. The claim is recorded in a
    manifest named after the DAG run: a retried task, even after a crash mid-way, returns exactly
    the files of its first attempt, and a file raced for by another run is claimed by one only.
    The events of the task's Asset outlets carry :func:`asset_event_extra` of the claim.
    Each file is handled on its own: a file the server refuses, or one that changed since the sensor
    found it ready (size or mtime), stays in the input folder and is logged with its reason; the
    others are claimed. See :func:`airflow_outamation.claims.claim`.

    :param sftp_conn_id: Airflow ``sftp`` connection
    :param base_path: the project's folder on the server (templated)
    :param files: the sensor's ready files: its summary (the files are found again in one listing
        of the input folder, or looked for again when it changed since), ``RemoteFile`` dicts or
        paths (templated); when ``None`` the operator lists the ready files itself
    :param source_dir: input folder under ``base_path`` (templated)
    :param in_progress_dir: in-progress folder under ``base_path`` (templated)
    :param date_format: ``strftime`` format of the dated folder (templated; ``%m%d%Y`` as in ``SftpService``)
    :param timezone: IANA time zone the run's date is taken in for the dated folder (``None``: UTC)
    :param pattern: file pattern when listing ready files itself (templated)
    :param stability_delay: seconds between the two listings when listing ready files itself
    :param max_files: most files one run claims (the first by name; templated); the others stay in
        the input folder for the next run. ``None`` for no cap
    :param name_encoding: Python codec a file name that is not valid UTF-8 is decoded with into its
        name in the in-progress folder (templated; bytes it leaves undefined are read as Latin-1);
        the manifest keeps the name as it was
    :param project_root: the project's configured folder (templated): the input and in-progress
        folders must lie inside it as the server resolves them (symbolic links followed), else the
        task fails. ``None``: inside ``base_path``
    :param done_marker: suffix of the files' done markers (``".done"``, see
        :class:`~airflow_outamation.readiness.ReadinessSettings`): a claimed file's marker is removed
        from the input folder once the file is claimed; ``None``: no markers
    :param recursive: when listing ready files itself, take those in subfolders of the input folder
        too (see :class:`~airflow_outamation.readiness.ReadinessSettings`); every file is claimed flat
        into the dated folder, a taken name getting `` (1)``, ... as always; its ``source_path``
        keeps where it was. With the sensor's files this comes with them
    :param return_summary: return :func:`claim_summary` (its size independent of the number of
        files; the tasks of this package read the files from the claim's record) instead of every
        claimed file's dict; the log then lists every claimed file, one line each
    """

    template_fields: Sequence[str] = (
        "base_path",
        "files",
        "source_dir",
        "in_progress_dir",
        "date_format",
        "pattern",
        "max_files",
        "name_encoding",
        "project_root",
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
        timezone: str | None = None,
        pattern: str = DEFAULT_PATTERN,
        stability_delay: float = DEFAULT_STABILITY_DELAY,
        max_files: int | None = None,
        name_encoding: str = DEFAULT_NAME_ENCODING,
        project_root: str | None = None,
        return_summary: bool = False,
        done_marker: str | None = None,
        recursive: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sftp_conn_id = sftp_conn_id
        self.base_path = base_path
        self.files = files
        self.return_summary = return_summary
        self.source_dir = source_dir
        self.in_progress_dir = in_progress_dir
        self.date_format = date_format
        self.timezone = timezone
        self.pattern = pattern
        self.stability_delay = stability_delay
        self.max_files = max_files
        self.name_encoding = name_encoding
        self.project_root = project_root
        self.done_marker = done_marker
        self.recursive = recursive

    def execute(self, context: Context) -> dict[str, Any] | list[dict[str, Any]]:
        """Claim the files; return the claimed ones as ``ClaimedFile.to_dict()`` dicts, or the summary."""
        try:
            codecs.lookup(self.name_encoding)
        except LookupError:
            raise AirflowFailException(f"name_encoding {self.name_encoding!r} is not an encoding") from None
        hook = PooledSFTPHook(ssh_conn_id=self.sftp_conn_id)
        source = posixpath.join(self.base_path, self.source_dir)
        target = posixpath.join(
            self.base_path, self.in_progress_dir, run_date(context, self.timezone).strftime(self.date_format)
        )
        for folder in (source, target):
            hook.confine(folder, self.project_root or self.base_path)
        files: Sequence[RemoteFile | Mapping[str, Any] | str]
        if isinstance(self.files, str) and self.files.startswith("{"):
            # The sensor's summary, ended in the triggerer: Airflow 3.3.2 stores a TaskSuccessEvent's
            # XComs JSON-encoded twice (TaskInstance.xcom_push serializes what the execution API
            # stores as is), so it comes back as its JSON text (README, "Airflow issues worked around").
            self.files = json.loads(self.files)
        if self.files is None:
            settings = ReadinessSettings(
                pattern=self.pattern, stability_delay=self.stability_delay, recursive=self.recursive
            )
            files = hook.list_ready_files(source, settings=settings)
        elif is_ready_summary(self.files):
            files = self._ready_again(hook, source, self.files)  # type: ignore[arg-type]
        else:
            files = self.files  # type: ignore[assignment]  # rendered: an XComArg is resolved by now
        cap = as_limit(self.max_files)
        if cap is not None and len(files) > cap:
            files = intended_files(files)[:cap]
            self.log.info(
                "Claiming the first %d ready file(s) by name; the others wait for the next run", len(files)
            )
        manifest_id = manifest_id_for(context["dag_run"].dag_id, context["run_id"])
        project = metrics.project_of(context)
        with metrics.timed(metrics.CLAIM_DURATION, project):
            result = hook.claim(files, target, manifest_id, self.name_encoding)
        metrics.count(metrics.FILES_CLAIMED, len(result.claimed), project)
        self.log.info(
            "Claimed %d of %d file(s) from %s into %s: %s",
            len(result.claimed),
            len(files),
            source,
            target,
            name_list([posixpath.basename(file.source_path) for file in result.claimed]),
        )
        for file in result.claimed if self.return_summary else ():  # the whole list, as XCom has none
            self.log.info("  claimed %s -> %s", printable(file.source_path), printable(file.backup_path))
        if result.skipped:
            self.log.warning("Skipped %d file(s): %s", len(result.skipped), describe_skipped(result.skipped))
        if self.done_marker:
            self._remove_markers(hook, [file.source_path + self.done_marker for file in result.claimed])
        extra = asset_event_extra(result.claimed)
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                context["outlet_events"][outlet].extra = extra
        self._claimed = [file.to_dict() for file in result.claimed]
        if self.return_summary:
            return claim_summary(result.claimed, target, manifest_id, self.name_encoding)
        return self._claimed

    def _ready_again(
        self, hook: PooledSFTPHook, source: str, summary: Mapping[str, Any]
    ) -> Sequence[RemoteFile | Mapping[str, Any]]:
        """
        The files of the sensor's summary: as it lists them, or found again, unchanged, in one listing.

        When the folder changed since the sensor looked (the digest differs), readiness is decided
        again with the sensor's settings (two listings ``stability_delay`` apart).
        """
        if summary["file_count"] <= len(summary["files"]):
            return list(summary["files"])
        settings = ReadinessSettings.from_dict(summary["readiness"])
        files = found_again(summary, source, hook.list_states(source, settings.recursive), time.time())
        if files is not None:
            return files
        self.log.info(
            "%s changed since the sensor found %d file(s) ready: looking again", source, summary["file_count"]
        )
        ready = hook.list_ready_files(source, settings=settings)
        return ready[: summary["file_count"]]

    def _remove_markers(self, hook: PooledSFTPHook, markers: list[str]) -> None:
        """Remove the claimed files' done markers: each said its file was complete, and it is claimed now."""
        for marker in markers:
            try:
                hook.remove_file(marker)
            except SFTPPathError as exc:  # gone with an earlier try of this claim; left, it is stale (older)
                self.log.info("Done marker not removed: %s", exc)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """OpenLineage: the input folder with the number of files claimed, and the folder they went to."""
        claimed = getattr(self, "_claimed", [])
        namespace = lineage.sftp_namespace(PooledSFTPHook(ssh_conn_id=self.sftp_conn_id))
        source = posixpath.join(self.base_path, self.source_dir)
        return lineage.lineage(
            lineage.sftp_inputs(namespace, Counter({source: len(claimed)})),
            lineage.sftp_outputs(namespace, lineage.folder_counts(file["backup_path"] for file in claimed)),
        )


class ProjectStatusOperator(BaseOperator):
    """
    Log a project at a glance: files ready in the input folder; claimed, sent, unsent, rejected, completed.

    Counts the date folders of the last ``days`` days up to the run's date (see
    :meth:`PooledSFTPHook.project_status`); returns the summary.

    :param sftp_conn_id: Airflow ``sftp`` connection
    :param base_path: the project's folder on the server (templated)
    :param source_dir: input folder under ``base_path``
    :param in_progress_dir: in-progress folder under ``base_path``
    :param date_format: ``strftime`` format of the dated folders
    :param timezone: IANA time zone of the dated folders (``None``: UTC)
    :param days: how many days back, the run's day included
    :param project_root: the project's configured folder (templated): ``base_path`` must lie inside
        it as the server resolves it (symbolic links followed), else the task fails; ``None``: not checked
    """

    template_fields: Sequence[str] = ("base_path", "project_root")
    ui_color = "#fdebd0"

    def __init__(
        self,
        *,
        sftp_conn_id: str,
        base_path: str,
        source_dir: str = "input",
        in_progress_dir: str = "in_progress",
        date_format: str = "%m%d%Y",
        timezone: str | None = None,
        days: int = 7,
        project_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sftp_conn_id = sftp_conn_id
        self.base_path = base_path
        self.source_dir = source_dir
        self.in_progress_dir = in_progress_dir
        self.date_format = date_format
        self.timezone = timezone
        self.days = days
        self.project_root = project_root

    def execute(self, context: Context) -> dict[str, Any]:
        """Count and log; return ``{"ready", "folders": {date: counts}, "total": counts}``."""
        day = run_date(context, self.timezone)
        dates = [(day - timedelta(days=back)).strftime(self.date_format) for back in range(self.days)]
        hook = PooledSFTPHook(ssh_conn_id=self.sftp_conn_id)
        if self.project_root:
            hook.confine(self.base_path, self.project_root)
        status = hook.project_status(self.base_path, self.source_dir, self.in_progress_dir, dates)
        total = status["total"]
        self.log.info(
            "%s, last %d day(s): %d ready in %s; claimed %d, sent %d, unsent %d, rejected %d, completed %d",
            self.base_path,
            self.days,
            status["ready"],
            self.source_dir,
            total["claimed"],
            total["sent"],
            total["unsent"],
            total["rejected"],
            total["completed"],
        )
        for date, counts in sorted(status["folders"].items()):
            self.log.info("  %s/%s: %s", self.in_progress_dir, date, counts)
        return status
