"""Operators that post claimed files to the document API: all batches in one task, or one per task."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator, Context, XComArg

from airflow_outamation import claims, lineage, metrics
from airflow_outamation.batching import (
    CHECKSUMS,
    DEFAULT_BATCH_SIZE,
    SHA256,
    batch_label,
    describe_batch,
    name_list,
    split_into_batches,
)
from airflow_outamation.claims import claim_dir_of, sibling_dir
from airflow_outamation.exceptions import DocumentApiError, DocumentApiRejectedError, SFTPClaimError
from airflow_outamation.hooks.document_api import BatchSubmission, DocumentApiHook, PreparedBatch
from airflow_outamation.hooks.sftp import PooledSFTPHook
from airflow_outamation.operators.sftp import claimed_file_dicts
from airflow_outamation.readiness import too_big

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

T = TypeVar("T")

#: Batch requests one send task keeps in flight (per project: one task per run).
DEFAULT_MAX_IN_FLIGHT = 8
#: Failed batches named in a send task's error message.
FAILURES_NAMED = 20
#: What happens to an accepted batch's files: stay, go to the processed folder, or are deleted.
COMPLETIONS = ("keep", "move", "delete")
#: Characters of the API's answer kept in a rejected batch's record.
ANSWER_CHARS = 500
#: Batches a send task lists one line each before it starts sending, and message ids its XCom lists.
BATCHES_LISTED = 100
#: Seconds a send task holds the batches it sends; another run sends them only after that (a task that died).
SEND_LEASE = 3600.0
#: How a mapped ``SubmitBatchOperator`` names its task instances: ``batch 2: a.pdf … e.pdf (5)``.
BATCH_MAP_INDEX_TEMPLATE = "batch {{ ti.map_index + 1 }}: {{ task.batch_label }}"


def _accepted_line(result: BatchSubmission, batch: Sequence[Mapping[str, Any]]) -> str:
    """One log line for an accepted batch: id, files, status, attempts."""
    return (
        f"Batch {result.message_id}: {batch_label(batch)} accepted, HTTP {result.status_code} "
        f"after {result.attempts} attempt(s)"
    )


def _folders(batch: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The claim folders of a batch's files, with the files in each."""
    by_folder: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in batch:
        by_folder[claim_dir_of(item)].append(item)
    return by_folder


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def complete_batch(
    sftp: PooledSFTPHook,
    message_id: str,
    batch: Sequence[Mapping[str, Any]],
    completion: str,
    processed_dir: str,
) -> None:
    """
    Apply the completion strategy to a batch that has its receipt: keep, move to processed, or delete.

    :param completion: one of ``COMPLETIONS``
    :param processed_dir: name of the folder beside the in-progress one (``<base>/<processed_dir>/<date>``)
    """
    complete_batches(sftp, {message_id: batch}, completion, processed_dir)


def complete_batches(
    sftp: PooledSFTPHook,
    batches: Mapping[str, Sequence[Mapping[str, Any]]],
    completion: str,
    processed_dir: str,
) -> None:
    """:func:`complete_batch` for many batches, one pipelined move (or delete) per claim folder."""
    if completion == "keep":
        return
    by_folder: dict[str, dict[str, list[Mapping[str, Any]]]] = defaultdict(dict)
    for message_id, batch in batches.items():
        for folder, files in _folders(batch).items():
            by_folder[folder][message_id] = files
    for folder, in_folder in by_folder.items():
        target = sibling_dir(folder, processed_dir) if completion == "move" else None
        details = {"completion": completion, "time": _now()}
        sftp.run_on_sftp(claims.complete_many, folder, in_folder, target, details)


def reject_batch(
    sftp: PooledSFTPHook,
    message_id: str,
    batch: Sequence[Mapping[str, Any]],
    error: DocumentApiError,
    attempts: int,
    rejected_dir: str,
) -> list[str]:
    """
    Move a refused batch's files to ``<base>/<rejected_dir>/<date>/`` with its record; return those folders.

    :param error: why (its text is already free of secrets), cut to ``ANSWER_CHARS``
    :param attempts: the failed sends of the batch so far
    """
    details = {
        "status": error.status,
        "answer": str(error)[:ANSWER_CHARS],
        "attempts": attempts,
        "time": _now(),
    }
    targets = []
    for folder, files in _folders(batch).items():
        target = sibling_dir(folder, rejected_dir)
        sftp.run_on_sftp(claims.reject, folder, message_id, files, target, details)
        targets.append(target)
    return targets


def check_checksum(checksum: str | None, sftp_conn_id: str | None) -> None:
    """
    Refuse a checksum this package cannot compute, or one without a connection to read the files.

    :raises ValueError: ``checksum`` is not ``None`` or one of :data:`~airflow_outamation.batching.CHECKSUMS`,
        or there is no ``sftp_conn_id``
    """
    if checksum is not None and checksum not in CHECKSUMS:
        raise ValueError(f"checksum must be one of {', '.join(CHECKSUMS)} or None, got {checksum!r}")
    if checksum and not sftp_conn_id:
        raise ValueError("checksum needs sftp_conn_id to read the files")


def with_checksums(
    sftp: PooledSFTPHook, batches: Sequence[Sequence[Mapping[str, Any]]]
) -> list[list[dict[str, Any]]]:
    """The batches' files, each with its ``sha256`` computed while streaming it from the server."""
    digests = iter(sftp.sha256_files([str(f["backup_path"]) for batch in batches for f in batch]))
    return [[{**f, SHA256: next(digests)} for f in batch] for batch in batches]


def record_receipts(sftp: PooledSFTPHook, message_id: str, batch: Sequence[Mapping[str, Any]]) -> list[str]:
    """Write the receipt of an accepted batch (files with their identity as claimed) into each folder."""
    return [
        sftp.run_on_sftp(claims.record_sent, folder, message_id, files)
        for folder, files in _folders(batch).items()
    ]


class _Settler:
    """
    Writes the receipts of accepted batches, then their completion, in a thread of its own.

    Receipts are written in groups (whatever was accepted while the previous group was written:
    one pipelined step each), so the send loop never waits on the SFTP server and the number of
    round trips does not grow with the number of batches. A batch is completed only once its
    receipt is written; a failure stays local to its batches (logged, fails the task at its end).
    """

    def __init__(self, operator: _BatchSending, sftp_conn_id: str) -> None:
        self._operator = operator
        self._sftp_conn_id = sftp_conn_id
        self._queue: queue.SimpleQueue[tuple[str, Sequence[Mapping[str, Any]]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="outamation-receipts", daemon=True)

    def __enter__(self) -> _Settler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()

    def accepted(self, message_id: str, files: Sequence[Mapping[str, Any]]) -> None:
        """Queue an accepted batch for its receipt and completion."""
        self._queue.put((message_id, files))

    def _run(self) -> None:
        sftp = PooledSFTPHook(self._sftp_conn_id)  # a hook belongs to one thread; the pool is shared
        while True:
            group = [self._queue.get()]
            while not self._queue.empty():
                group.append(self._queue.get())
            accepted = [item for item in group if item is not None]
            if accepted:
                self._settle(sftp, accepted)
            if None in group:
                return

    def _settle(
        self, sftp: PooledSFTPHook, accepted: Sequence[tuple[str, Sequence[Mapping[str, Any]]]]
    ) -> None:
        by_folder: dict[str, dict[str, list[Mapping[str, Any]]]] = defaultdict(dict)
        for message_id, files in accepted:
            for folder, in_folder in _folders(files).items():
                by_folder[folder][message_id] = in_folder
        unwritten: set[str] = set()
        for folder, receipts in by_folder.items():
            what = f"Receipts of {len(receipts)} accepted batch(es) in {folder} (a retry resends them)"
            if (
                self._operator._locally(what, sftp.run_on_sftp, claims.record_sent_many, folder, receipts)
                is None
            ):
                unwritten |= receipts.keys()
        if not self._operator.completion_after:  # else a later run completes them
            self._operator._complete(sftp, {i: files for i, files in accepted if i not in unwritten})


class SubmitBatchOperator(BaseOperator):
    """
    Post one batch of claimed files to the document API and return a small summary.

    Map it over the batches of ``BatchFilesOperator`` when you want one task per batch:
    ``SubmitBatchOperator.partial(task_id=..., uploaded_by=..., source=...).expand(batch=batches)``;
    each mapped task is then labelled ``batch 2: a.pdf … e.pdf (5)`` in the UI
    (:data:`BATCH_MAP_INDEX_TEMPLATE`, unless ``map_index_template`` is given).
    At volume use :class:`SubmitBatchesOperator`, which sends every batch of a claim in one task.
    The batch's message id is derived from its content, so a cleared and re-run task resends it
    under the same id and the API can de-duplicate it. With ``sftp_conn_id``, a batch the API
    accepted gets a receipt next to the claim manifest (``<in_progress>/<date>/.claims/sent/<id>.json``),
    so :meth:`PooledSFTPHook.claim_status` can tell the claim's sent files from its unsent ones.

    :param batch: the files of the batch; each needs ``filename`` and ``backup_path``
    :param uploaded_by: who uploaded the files (templated)
    :param source: where the files came from (templated)
    :param profile_code: processing profile (templated); the connection's ``profile_code`` when empty
    :param document_api_conn_id: the ``outamation_document_api`` connection
    :param hook_kwargs: extra ``DocumentApiHook`` arguments (``timeout``, ``max_retries``, ...)
    :param sftp_conn_id: the ``sftp`` connection holding the files; when given, sent batches get a receipt
    :param map_index_template: how a mapped task is labelled in the UI; :data:`BATCH_MAP_INDEX_TEMPLATE`
    :param checksum: ``"sha256"``: each file's SHA-256 goes in the payload and the receipt (read
        through ``sftp_conn_id``); ``None`` (default): no checksum
    """

    template_fields: Sequence[str] = ("uploaded_by", "source", "profile_code")
    ui_color = "#d7ecf9"

    def __init__(
        self,
        *,
        batch: Sequence[Mapping[str, Any]],
        uploaded_by: str,
        source: str,
        profile_code: str | None = None,
        document_api_conn_id: str = DocumentApiHook.default_conn_name,
        hook_kwargs: Mapping[str, Any] | None = None,
        sftp_conn_id: str | None = None,
        map_index_template: str | None = BATCH_MAP_INDEX_TEMPLATE,
        checksum: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(map_index_template=map_index_template, **kwargs)
        check_checksum(checksum, sftp_conn_id)
        self.checksum = checksum
        self.batch = batch
        self.uploaded_by = uploaded_by
        self.source = source
        self.profile_code = profile_code
        self.document_api_conn_id = document_api_conn_id
        self.hook_kwargs = dict(hook_kwargs or {})
        self.sftp_conn_id = sftp_conn_id

    @property
    def batch_label(self) -> str:
        """The batch's files, bounded: ``first.pdf … last.pdf (5)``."""
        return batch_label(self.batch)

    def execute(self, context: Context) -> dict[str, Any]:
        """Submit the batch; return ``{"message_id", "status", "file_count", "attempts"}``."""
        project = metrics.project_of(context)
        self.log.info("Sending %s: %s", self.batch_label, name_list([str(f["filename"]) for f in self.batch]))
        batch = self.batch
        if self.checksum and self.sftp_conn_id:
            batch = with_checksums(PooledSFTPHook(self.sftp_conn_id), [batch])[0]
        hook = DocumentApiHook(self.document_api_conn_id, **{"project": project, **self.hook_kwargs})
        try:
            with metrics.timed(metrics.SEND_DURATION, project):
                result = hook.submit_batch(batch, self.uploaded_by, self.source, self.profile_code)
        except DocumentApiError:
            metrics.count(metrics.FILES_FAILED, len(self.batch), project)
            raise
        finally:
            hook.close()
        metrics.count(metrics.FILES_SENT, result.file_count, project)
        self.log.info("%s", _accepted_line(result, self.batch))
        if self.sftp_conn_id:
            for receipt in record_receipts(PooledSFTPHook(self.sftp_conn_id), result.message_id, batch):
                self.log.info("Receipt %s", receipt)
        return result.summary()


def _given_up(record: Mapping[str, Any]) -> DocumentApiError:
    """Why a batch is given up: its failed sends, and the last one's status and answer."""
    last = record.get("last_failure") or {}
    answer = f"; last: {last['answer']}" if last.get("answer") else ""
    return DocumentApiError(f"gave up after {record['attempts']} failed send(s){answer}", last.get("status"))


class _BatchSending(BaseOperator):
    """What the send and resend operators share: send prepared batches, then settle each on the server."""

    def __init__(
        self,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        document_api_conn_id: str = DocumentApiHook.default_conn_name,
        api_url: str | None = None,
        hook_kwargs: Mapping[str, Any] | None = None,
        completion: str = "keep",
        completion_after: float = 0,
        processed_dir: str = "processed",
        rejected_dir: str = "rejected",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if completion not in COMPLETIONS:
            raise ValueError(f"completion must be one of {', '.join(COMPLETIONS)}, got {completion!r}")
        if completion_after < 0:
            raise ValueError(f"completion_after must be 0 or more seconds, got {completion_after!r}")
        self.completion_after = completion_after
        self.max_in_flight = max_in_flight
        self.document_api_conn_id = document_api_conn_id
        self.hook_kwargs = {**({"api_url": api_url} if api_url else {}), **(hook_kwargs or {})}
        self.completion = completion
        self.processed_dir = processed_dir
        self.rejected_dir = rejected_dir
        self._project = ""
        self._holder = ""
        self._stuck: dict[str, str] = {}
        self._in_flight: set[str] = set()

    def execute(self, context: Context) -> dict[str, Any]:
        """
        Run the send, timed as ``outamation.send.duration`` of the DAG's project.

        :raises SFTPClaimError: at the end, when the housekeeping (completion, rejected move,
            retention) of a batch failed; it stopped no other batch, the next run tries again
        """
        self._project = metrics.project_of(context)
        ti = context.get("ti")
        self._holder = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{ti.map_index}" if ti else self.task_id
        self._stuck, self._in_flight = {}, set()
        with metrics.timed(metrics.SEND_DURATION, self._project):
            summary = self._run(context)
        if self._stuck:
            named = "; ".join(f"{what}: {why}" for what, why in list(self._stuck.items())[:FAILURES_NAMED])
            raise SFTPClaimError(
                f"housekeeping failed for {len(self._stuck)} batch(es) or folder(s): {named}"
            )
        return summary

    def _locally(self, what: str, func: Callable[..., T], *args: Any) -> T | None:
        """``func(*args)``, one batch's or folder's housekeeping; a failure is logged and kept, not raised."""
        try:
            return func(*args)
        except (SFTPClaimError, OSError) as exc:
            self.log.error("%s: %s; the next run tries again", what, exc)
            self._stuck[what] = str(exc)
            return None

    def _run(self, context: Context) -> dict[str, Any]:
        raise NotImplementedError

    def _api(self) -> DocumentApiHook:
        """A document API hook for this task's connection, its API calls timed for the project."""
        return DocumentApiHook(self.document_api_conn_id, **{"project": self._project, **self.hook_kwargs})

    def _send(
        self,
        api: DocumentApiHook,
        sftp: PooledSFTPHook | None,
        pending: Sequence[PreparedBatch],
        files_of: Mapping[str, Sequence[Mapping[str, Any]]],
    ) -> dict[str, tuple[DocumentApiError, int]]:
        """
        Send ``pending``; give accepted batches receipt and completion; return failures with attempts.

        With ``sftp``, only the batches this task leases are sent (``_in_flight``: the others,
        which another run is sending right now); the leases are released once each batch is settled.
        """
        leases = self._lease(sftp, pending, files_of) if sftp is not None else {}
        failures: dict[str, tuple[DocumentApiError, int]] = {}
        settler = _Settler(self, sftp.ssh_conn_id) if sftp is not None and sftp.ssh_conn_id else None
        try:
            with settler or contextlib.nullcontext():
                self._send_leased(api, sftp, settler, pending, files_of, failures)
        finally:
            if sftp is not None:
                for folder, taken in leases.items():
                    release = (sftp.run_on_sftp, claims.release_leases, folder, taken)
                    self._locally(f"Releasing the leases in {folder}", *release)
        return failures

    def _send_leased(
        self,
        api: DocumentApiHook,
        sftp: PooledSFTPHook | None,
        settler: _Settler | None,
        pending: Sequence[PreparedBatch],
        files_of: Mapping[str, Sequence[Mapping[str, Any]]],
        failures: dict[str, tuple[DocumentApiError, int]],
    ) -> None:
        """
        Send the batches this task leased; hand each accepted one to ``settler``, keep failures.

        The failed sends are recorded (``.claims/attempts/``) once every batch was sent, in one
        pipelined step per claim folder; a task killed before that leaves its failures uncounted.
        """
        failed: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for batch, outcome in api.send_batches(
            [b for b in pending if b.message_id not in self._in_flight], int(self.max_in_flight)
        ):
            files = files_of[batch.message_id]
            if isinstance(outcome, DocumentApiError):
                self.log.error("Batch %s: %s failed: %s", batch.message_id, batch_label(files), outcome)
                metrics.count(metrics.FILES_FAILED, len(files), self._project)
                failures[batch.message_id] = (outcome, 1)
                details = {"status": outcome.status, "answer": str(outcome)[:ANSWER_CHARS], "time": _now()}
                failed[claim_dir_of(files[0])][batch.message_id] = details
                continue
            self.log.info("%s", _accepted_line(outcome, files))
            metrics.count(metrics.FILES_SENT, len(files), self._project)
            if settler is not None:
                settler.accepted(batch.message_id, files)
        for folder, details_of in failed.items():
            if sftp is not None:
                recorded = sftp.run_on_sftp(claims.record_attempts, folder, details_of)
                failures.update((i, (failures[i][0], attempts)) for i, attempts in recorded.items())

    def _lease(
        self,
        sftp: PooledSFTPHook,
        pending: Sequence[PreparedBatch],
        files_of: Mapping[str, Sequence[Mapping[str, Any]]],
    ) -> dict[str, dict[str, int]]:
        """Lease ``pending`` for this task per claim folder; ``_in_flight``: those another run holds."""
        by_folder: dict[str, list[str]] = defaultdict(list)
        for batch in pending:
            by_folder[claim_dir_of(files_of[batch.message_id][0])].append(batch.message_id)
        leases = {
            folder: sftp.run_on_sftp(claims.take_leases, folder, ids, self._holder, SEND_LEASE, time.time())
            for folder, ids in by_folder.items()
        }
        taken = set().union(*leases.values())
        self._in_flight = {batch.message_id for batch in pending} - taken
        for message_id in sorted(self._in_flight):
            self.log.warning("Batch %s: another run is sending it right now; left to that run", message_id)
        return leases

    def _completion_due(self, sent_at: float | None) -> bool:
        """Whether a batch accepted at ``sent_at`` (its receipt's mtime) is due for its completion."""
        return sent_at is None or time.time() - sent_at >= self.completion_after

    def _complete(self, sftp: PooledSFTPHook, batches: Mapping[str, Sequence[Mapping[str, Any]]]) -> None:
        """
        Apply the completion to sent batches, all at once; a failure stays local to its batch.

        When the group fails, each batch is completed on its own, so only the failing ones are
        logged and left to the next run.
        """
        if not batches:
            return
        try:
            complete_batches(sftp, batches, self.completion, self.processed_dir)
        except (SFTPClaimError, OSError):
            for message_id, files in batches.items():
                self._locally(
                    f"Completion of batch {message_id}",
                    complete_batch,
                    sftp,
                    message_id,
                    files,
                    self.completion,
                    self.processed_dir,
                )

    def _reject(
        self,
        sftp: PooledSFTPHook,
        rejected: Mapping[str, tuple[DocumentApiError, int]],
        files_of: Mapping[str, Sequence[Mapping[str, Any]]],
    ) -> dict[str, list[str]]:
        """Move every batch of ``rejected`` to its rejected folder; return the folders by message id."""
        moved = {}
        for message_id, (error, attempts) in rejected.items():
            files = files_of[message_id]
            targets = self._locally(
                f"Move of batch {message_id} to the rejected folder",
                reject_batch,
                sftp,
                message_id,
                files,
                error,
                attempts,
                self.rejected_dir,
            )
            if targets is None:
                continue
            moved[message_id] = targets
            self.log.error("Batch %s moved to %s", message_id, ", ".join(moved[message_id]))
            metrics.count(metrics.FILES_REJECTED, len(files_of[message_id]), self._project)
        return moved


class SubmitBatchesOperator(_BatchSending):
    """
    Split claimed files into batches and post every batch in this one task, several at a time.

    The cost of a claim does not grow with Airflow tasks: all batches go over one keep-alive
    session with ``max_in_flight`` requests in flight. Each batch keeps its content-derived message
    id, a fresh signature per attempt and its retries (a ``Retry-After`` slows every sender).
    With ``sftp_conn_id`` (recommended) each batch is recorded before its first send
    (``.claims/batches/<id>.json``: files and payload fields, so :class:`ResendUnsentOperator` can
    rebuild it exactly), each accepted batch gets its receipt at once and then its ``completion``
    (keep, move to ``<base>/<processed_dir>/<date>/``, delete), and a retried or cleared task sends
    only the batches without a receipt, under the same ids. A failing batch does not stop the
    others: all are attempted; a batch the API refused for good (HTTP 4xx but 408/429) then moves to
    ``<base>/<rejected_dir>/<date>/`` with a JSON record beside its files, and the task fails naming
    the failed batches and where their files are; without Airflow retries when the API refused
    every failed batch, with them when any failure may heal (unreachable, 408, 429, 5xx).

    Returns counts (``batches``, ``files``, ``sent``, ``already_sent``, ...), the first
    :data:`BATCHES_LISTED` ``message_ids`` and ``claim_dirs``: the claim folders whose ``.claims/``
    hold every batch's record and receipt, so the XCom does not grow with the number of batches.

    :param claimed: the claim step's result (templated): its summary, whose files are read from the
        claim's record through ``sftp_conn_id``, or its files ``[{"filename", "backup_path", ...}]``
    :param uploaded_by: who uploaded the files (templated)
    :param source: where the files came from (templated)
    :param profile_code: processing profile (templated); the connection's ``profile_code`` when empty
    :param batch_size: files per API call (templated; 5, as in ``SftpService``)
    :param max_in_flight: API requests in flight at once (templated)
    :param document_api_conn_id: the ``outamation_document_api`` connection
    :param sftp_conn_id: the ``sftp`` connection holding the files; records and receipts are written there
    :param api_url: the API's URL, overriding the connection's (a project entry's ``api_url``)
    :param hook_kwargs: extra ``DocumentApiHook`` arguments (``timeout``, ``max_retries``, ...)
    :param completion: what happens to an accepted batch's files: ``keep`` (default), ``move``, ``delete``
    :param completion_after: seconds after its acceptance before an accepted batch is completed; 0
        (default): at once; else by the first ``ResendUnsentOperator`` run after that time
    :param processed_dir: folder beside the in-progress one that ``move`` puts files in (dated like the claim)
    :param rejected_dir: folder beside the in-progress one that refused batches go to (dated like the claim)
    :param checksum: ``"sha256"``: each file's SHA-256, computed while streaming it from the server
        before its batch's first send, goes in the payload, the batch's record and its receipt; the
        message ids stay as without; ``None`` (default): no checksum
    :param max_size: largest file in bytes to send (``None``: no limit); a larger claimed file is never
        sent: it goes alone to the rejected folder with a record saying why (with ``sftp_conn_id``),
        else it is left where it is; both logged, counted as ``too_big``
    """

    template_fields: Sequence[str] = (
        "claimed",
        "uploaded_by",
        "source",
        "profile_code",
        "batch_size",
        "max_in_flight",
    )
    ui_color = "#d7ecf9"

    def __init__(
        self,
        *,
        claimed: Mapping[str, Any] | Sequence[Mapping[str, Any]] | XComArg,
        uploaded_by: str,
        source: str,
        profile_code: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        sftp_conn_id: str | None = None,
        checksum: str | None = None,
        max_size: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_checksum(checksum, sftp_conn_id)
        self.checksum = checksum
        self.max_size = max_size
        self.claimed = claimed
        self.uploaded_by = uploaded_by
        self.source = source
        self.profile_code = profile_code
        self.batch_size = batch_size
        self.sftp_conn_id = sftp_conn_id

    def _run(self, context: Context) -> dict[str, Any]:
        """Send every unsent batch; return ``{"batches", "sent", "already_sent", "failed", ...}``."""
        claimed = claimed_file_dicts(self.claimed, self.sftp_conn_id)  # type: ignore[arg-type]  # resolved by now
        files, larger = too_big(claimed, self.max_size)
        self._files = files
        batches = split_into_batches(files, int(self.batch_size))
        api = self._api()
        sftp = PooledSFTPHook(self.sftp_conn_id) if self.sftp_conn_id else None
        if larger:
            self._set_aside(api, sftp, larger)
        prepared = [api.prepare_batch(b, self.uploaded_by, self.source, self.profile_code) for b in batches]
        files_of = {p.message_id: b for p, b in zip(prepared, batches, strict=True)}
        states = self._settled(sftp, batches)
        already = states["sent"] & files_of.keys()
        rejecting = states["rejecting"] & files_of.keys()
        rejected_before = rejecting | (states["rejected"] & files_of.keys())
        pending = [p for p in prepared if p.message_id not in already | rejected_before]
        if self.checksum and sftp is not None:
            pending = self._with_checksums(api, sftp, pending, files_of)
        self.log.info(
            "%d file(s) in %d batch(es) of up to %s; %d already sent (receipts), %d rejected before, "
            "sending %d, %s at a time",
            len(files),
            len(batches),
            self.batch_size,
            len(already),
            len(rejected_before),
            len(pending),
            self.max_in_flight,
        )
        self._list_batches(batches, {p.message_id for p in pending}, [p.message_id for p in prepared])
        if sftp is not None:
            if not self.completion_after:  # the ones a crash interrupted
                self._complete(sftp, {i: files_of[i] for i in sorted(already)})
            unfinished = DocumentApiError(
                "a move to the rejected folder was cut short"
            )  # its plan has the reason
            self._reject(sftp, {i: (unfinished, 0) for i in rejecting}, files_of)
            self._record_batches(api, sftp, pending, files_of)
        try:
            failures = self._send(api, sftp, pending, files_of)
        finally:
            api.close()
        refused = {i: f for i, f in failures.items() if isinstance(f[0], DocumentApiRejectedError)}
        moved = self._reject(sftp, refused, files_of) if sftp is not None else {}
        summary = {
            "batches": len(batches),
            "files": len(files),
            "sent": len(pending) - len(failures) - len(self._in_flight),
            "in_flight": len(self._in_flight),
            "already_sent": len(already),
            "failed": len(failures),
            "rejected": len(moved),
            "message_ids": [p.message_id for p in prepared[:BATCHES_LISTED]],
            "claim_dirs": sorted({claim_dir_of(file) for file in files}),
            "failed_ids": sorted(failures),
            "housekeeping_failed": len(self._stuck),
            "too_big": len(larger),
        }
        self.log.info(
            "Sent %(sent)d batch(es), %(already_sent)d already sent, %(failed)d failed "
            "(%(rejected)d moved to the rejected folder), of %(batches)d",
            summary,
        )
        if failures:
            message = self._failure_message({i: f[0] for i, f in failures.items()}, files_of, moved)
            if len(refused) == len(failures):
                raise DocumentApiRejectedError(message)  # no Airflow retry: every batch was refused
            raise DocumentApiError(message)
        return summary

    def _set_aside(
        self, api: DocumentApiHook, sftp: PooledSFTPHook | None, larger: Sequence[dict[str, Any]]
    ) -> None:
        """Move each file larger than ``max_size`` alone to the rejected folder, unsent, saying why."""
        self.log.error(
            "%d file(s) larger than max_size %s bytes, never sent: %s",
            len(larger),
            self.max_size,
            name_list([str(file["filename"]) for file in larger]),
        )
        if sftp is None:
            return  # no sftp_conn_id: nowhere to record them; they stay in the claim folder
        files_of = {
            api.prepare_batch([file], self.uploaded_by, self.source, self.profile_code).message_id: [file]
            for file in larger
        }
        done = self._settled(sftp, [[file] for file in larger])["rejected"]
        why = f"larger than max_size {self.max_size}, never sent"
        reasons = {
            message_id: (DocumentApiError(f"{files[0]['filename']}: {files[0]['size']} bytes, {why}"), 0)
            for message_id, files in files_of.items()
            if message_id not in done
        }
        self._reject(sftp, reasons, files_of)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """OpenLineage: the claim folders with the number of files sent from each, and the document API."""
        files: list[dict[str, Any]] = getattr(self, "_files", [])
        inputs = []
        if self.sftp_conn_id:
            namespace = lineage.sftp_namespace(PooledSFTPHook(self.sftp_conn_id))
            inputs = lineage.sftp_inputs(namespace, lineage.folder_counts(f["backup_path"] for f in files))
        return lineage.lineage(inputs, [lineage.api_output(self._api().settings.url, len(files))])

    def _with_checksums(
        self,
        api: DocumentApiHook,
        sftp: PooledSFTPHook,
        pending: Sequence[PreparedBatch],
        files_of: dict[str, list[dict[str, Any]]],
    ) -> list[PreparedBatch]:
        """``pending`` rebuilt with each file's SHA-256 (``files_of`` too); the message ids stay."""
        summed = with_checksums(sftp, [files_of[batch.message_id] for batch in pending])
        rebuilt = []
        for batch, files in zip(pending, summed, strict=True):
            files_of[batch.message_id] = files
            rebuilt.append(api.prepare_batch(files, self.uploaded_by, self.source, self.profile_code))
        self.log.info("Computed the SHA-256 of %d file(s) to send", sum(len(files) for files in summed))
        return rebuilt

    def _list_batches(
        self, batches: Sequence[Sequence[Mapping[str, Any]]], pending: set[str], message_ids: Sequence[str]
    ) -> None:
        """Log a line per batch (the first ``BATCHES_LISTED``): its number, files, whether it is sent now."""
        for number, (batch, message_id) in enumerate(zip(batches, message_ids, strict=True), start=1):
            if number > BATCHES_LISTED:
                self.log.info("… and %d more batch(es)", len(batches) - BATCHES_LISTED)
                break
            state = "sending" if message_id in pending else "not sent again (sent or rejected before)"
            self.log.info("%s; %s as %s", describe_batch(batch, number, len(batches)), state, message_id)

    def _record_batches(
        self,
        api: DocumentApiHook,
        sftp: PooledSFTPHook,
        pending: Sequence[PreparedBatch],
        files_of: Mapping[str, Sequence[Mapping[str, Any]]],
    ) -> None:
        """Record each pending batch (files, payload fields) before its first send, for the resend."""
        fields = {
            "uploaded_by": self.uploaded_by,
            "source": self.source,
            "profile_code": self.profile_code or api.settings.profile_code,
        }
        by_folder: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        for batch in pending:
            files = [dict(item) for item in files_of[batch.message_id]]
            by_folder[claim_dir_of(files[0])][batch.message_id] = {"files": files, **fields}
        for folder, records in by_folder.items():  # one pipelined step per claim folder
            sftp.run_on_sftp(claims.record_batch_many, folder, records)

    @staticmethod
    def _settled(sftp: PooledSFTPHook | None, batches: list[list[dict[str, Any]]]) -> dict[str, set[str]]:
        """The message ids sent, rejected and being rejected in this claim's folders (none without sftp)."""
        states: dict[str, set[str]] = {"sent": set(), "rejected": set(), "rejecting": set()}
        if sftp is None:
            return states
        for folder in sorted({folder for batch in batches for folder in _folders(batch)}):
            for state, ids in sftp.run_on_sftp(claims.settled, folder).items():
                states[state] |= ids
        return states

    @staticmethod
    def _failure_message(
        failures: Mapping[str, DocumentApiError],
        files_of: Mapping[str, Sequence[Mapping[str, Any]]],
        moved: Mapping[str, Sequence[str]],
    ) -> str:
        lines = []
        for message_id, error in list(failures.items())[:FAILURES_NAMED]:
            folders = ", ".join(sorted(_folders(files_of[message_id])))
            if message_id in moved:
                folders += f", moved to {', '.join(moved[message_id])}"
            status = f"HTTP {error.status}" if error.status else "no answer"
            lines.append(f"{message_id} ({status}; {batch_label(files_of[message_id])} in {folders})")
        more = f" and {len(failures) - FAILURES_NAMED} more" if len(failures) > FAILURES_NAMED else ""
        advice = []
        if moved:
            advice.append(
                f"{len(moved)} refused batch(es) were moved to the rejected folder with a <message id>.json "
                "record beside their files; move the files (not the .json) back to the input folder to "
                "send them again"
            )
        if len(moved) < len(failures):
            advice.append(
                "the other failed files stay where they are and have no receipt; clearing this task, or the "
                "next run's resend_unsent, resends only them, under the same ids"
            )
        return f"{len(failures)} batch(es) failed: {'; '.join(lines)}{more}. {'; '.join(advice)}"


class ResendUnsentOperator(_BatchSending):
    """
    Resend, under their original message ids, the batches of a project left unsent by earlier runs.

    Looks at every claim folder of the project: ``<base_path>/<in_progress_dir>/<date>/``, and
    those of runs for a subfolder (``<base_path>/east/<in_progress_dir>/<date>/``). A batch recorded
    by :class:`SubmitBatchesOperator` that has neither a receipt nor a rejected record, was
    recorded at least ``resend_after`` seconds ago, and that no other run is sending right now (its
    send lease), is rebuilt exactly (same files, payload fields, hence the same id) and sent;
    accepted, it gets its receipt and ``completion``. A batch the API refuses for good, or that
    failed ``max_attempts`` times (task tries and resend runs), moves to the rejected folder and the
    task fails naming it. A failure that may heal is logged; the next run tries again. Completions
    a crash left undone, or due after ``completion_after``, are done; a batch whose completion or
    rejected move fails is logged and fails the task at its end, after every other batch was handled.

    :param sftp_conn_id: the ``sftp`` connection holding the files
    :param base_path: the project's folder (templated)
    :param in_progress_dir: in-progress folder under ``base_path`` (templated)
    :param resend_after: seconds a batch must have been recorded before it is resent (0: next run)
    :param max_attempts: failed sends after which a batch is given up and moved to the rejected folder
    :param retention_days: days after which the records (manifest, placement, receipts, ...) of a
        finished claim are removed; ``None`` keeps them
    :param completion_after: seconds after its acceptance before a batch is completed (0: at once)
    """

    template_fields: Sequence[str] = ("base_path", "in_progress_dir")
    ui_color = "#d7ecf9"

    def __init__(
        self,
        *,
        sftp_conn_id: str,
        base_path: str,
        in_progress_dir: str = "in_progress",
        resend_after: float = 0,
        max_attempts: int = 5,
        retention_days: float | None = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.retention_days = retention_days
        self.sftp_conn_id = sftp_conn_id
        self.base_path = base_path
        self.in_progress_dir = in_progress_dir
        self.resend_after = resend_after
        self.max_attempts = max_attempts

    def _run(self, context: Context) -> dict[str, Any]:
        """Resend what is due, then apply retention; return counts (``resent``, ``failed``, ...)."""
        sftp = PooledSFTPHook(self.sftp_conn_id)
        skip = (self.processed_dir, self.rejected_dir)
        folders = sftp.run_on_sftp(claims.project_claim_folders, self.base_path, self.in_progress_dir, skip)
        records: dict[str, dict[str, Any]] = {}
        for folder in folders:
            records.update(sftp.run_on_sftp(claims.open_batches, folder, self.completion))
        files_of = {message_id: record["files"] for message_id, record in records.items()}
        due_completions = {
            message_id: record["files"]
            for message_id, record in records.items()
            if record["sent"] and not record["completed"] and self._completion_due(record["sent_at"])
        }
        self._complete(sftp, due_completions)
        unsent = {i: r for i, r in records.items() if not r["sent"] and not r["rejecting"]}
        due = {i: r for i, r in unsent.items() if time.time() - r["recorded_at"] >= self.resend_after}
        given_up = {i: r for i, r in due.items() if r["attempts"] >= self.max_attempts}
        api = self._api()
        try:
            pending = self._rebuild(api, {i: r for i, r in due.items() if i not in given_up})
            failures = self._send(api, sftp, pending, files_of)
        finally:
            api.close()
        cut_short = {i: r for i, r in records.items() if r["rejecting"]}  # their plan has the reason
        rejected = {i: (_given_up(r), r["attempts"]) for i, r in {**given_up, **cut_short}.items()}
        rejected.update(
            (i, f)
            for i, f in failures.items()
            if isinstance(f[0], DocumentApiRejectedError) or f[1] >= self.max_attempts
        )
        moved = self._reject(sftp, rejected, files_of)
        purged: list[str] = []
        if self.retention_days is not None:
            max_age = self.retention_days * 86400
            for folder in folders:
                purge = (
                    sftp.run_on_sftp,
                    claims.purge_finished,
                    folder,
                    max_age,
                    time.time(),
                    self.completion,
                )
                purged += self._locally(f"Retention in {folder}", *purge) or []
        summary = {
            "resent": len(pending) - len(failures) - len(self._in_flight),
            "in_flight": len(self._in_flight),
            "failed": len(failures),
            "rejected": len(moved),
            "waiting": len(unsent) - len(due),
            "purged_claims": len(purged),
            "housekeeping_failed": len(self._stuck),
        }
        self.log.info(
            "Under %s (%d claim folder(s)): %d unsent batch(es); resent %d, %d being sent by another run, "
            "%d failed, %d moved to the rejected folder, %d waiting for resend_after (%s s); records of "
            "%d finished claim(s) removed",
            self.base_path,
            len(folders),
            len(unsent),
            summary["resent"],
            summary["in_flight"],
            summary["failed"],
            summary["rejected"],
            summary["waiting"],
            self.resend_after,
            len(purged),
        )
        if moved:
            folders = sorted({folder for targets in moved.values() for folder in targets})
            raise DocumentApiRejectedError(
                f"{len(moved)} batch(es) given up or refused by the API, moved with a <message id>.json "
                f"record to {', '.join(folders)} ({', '.join(sorted(moved))}); move the files back to "
                "the input folder to send them again"
            )
        return summary

    def _rebuild(self, api: DocumentApiHook, due: Mapping[str, Mapping[str, Any]]) -> list[PreparedBatch]:
        """The due batches rebuilt from their records; one whose id no longer matches is logged and left."""
        rebuilt = []
        for message_id, record in sorted(due.items()):
            batch = api.prepare_batch(
                record["files"], record["uploaded_by"], record["source"], record["profile_code"]
            )
            if batch.message_id != message_id:
                self.log.error(
                    "Batch %s rebuilt as %s: not resent (its record was changed)",
                    message_id,
                    batch.message_id,
                )
                continue
            rebuilt.append(batch)
        return rebuilt
