"""Operators that post claimed files to the document API: all batches in one task, or one per task."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context, XComArg

from airflow_outamation.batching import DEFAULT_BATCH_SIZE, split_into_batches
from airflow_outamation.exceptions import DocumentApiError, DocumentApiRejectedError
from airflow_outamation.hooks.document_api import BatchSubmission, DocumentApiHook
from airflow_outamation.hooks.sftp import PooledSFTPHook

#: Batch requests one send task keeps in flight (per project: one task per run).
DEFAULT_MAX_IN_FLIGHT = 8
#: Failed batches named in a send task's error message.
FAILURES_NAMED = 20


def batch_label(batch: Sequence[Mapping[str, Any]]) -> str:
    """``first.pdf … last.pdf (5)``: a batch's file names, bounded, for logs."""
    names = [str(item["filename"]) for item in batch]
    span = names[0] if len(names) == 1 else f"{names[0]} … {names[-1]}"
    return f"{span} ({len(names)})"


def _accepted_line(result: BatchSubmission, batch: Sequence[Mapping[str, Any]]) -> str:
    """One log line for an accepted batch: id, files, status, attempts."""
    return (
        f"Batch {result.message_id}: {batch_label(batch)} accepted, HTTP {result.status_code} "
        f"after {result.attempts} attempt(s)"
    )


def _folders(batch: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """The in-progress folders of a batch's files, with the files in each."""
    by_folder: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for item in batch:
        by_folder[posixpath.dirname(item["backup_path"])].append(item)
    return by_folder


def record_receipts(sftp: PooledSFTPHook, message_id: str, batch: Sequence[Mapping[str, Any]]) -> list[str]:
    """Write the receipt of an accepted batch (files with their identity as claimed) into each folder."""
    return [sftp.record_sent(folder, message_id, files) for folder, files in _folders(batch).items()]


class SubmitBatchOperator(BaseOperator):
    """
    Post one batch of claimed files to the document API and return a small summary.

    Map it over the batches of ``BatchFilesOperator`` when you want one task per batch:
    ``SubmitBatchOperator.partial(task_id=..., uploaded_by=..., source=...).expand(batch=batches)``.
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.uploaded_by = uploaded_by
        self.source = source
        self.profile_code = profile_code
        self.document_api_conn_id = document_api_conn_id
        self.hook_kwargs = dict(hook_kwargs or {})
        self.sftp_conn_id = sftp_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        """Submit the batch; return ``{"message_id", "status", "file_count", "attempts"}``."""
        hook = DocumentApiHook(self.document_api_conn_id, **self.hook_kwargs)
        try:
            result = hook.submit_batch(self.batch, self.uploaded_by, self.source, self.profile_code)
        finally:
            hook.close()
        self.log.info("%s", _accepted_line(result, self.batch))
        if self.sftp_conn_id:
            for receipt in record_receipts(PooledSFTPHook(self.sftp_conn_id), result.message_id, self.batch):
                self.log.info("Receipt %s", receipt)
        return result.summary()


class SubmitBatchesOperator(BaseOperator):
    """
    Split claimed files into batches and post every batch in this one task, several at a time.

    The cost of a claim does not grow with Airflow tasks: all batches go over one keep-alive
    session with ``max_in_flight`` requests in flight. Each batch keeps its content-derived message
    id, a fresh signature per attempt and its retries (a ``Retry-After`` slows every sender).
    With ``sftp_conn_id`` (recommended) each accepted batch gets its receipt on the server at once,
    and a retried or cleared task sends only the batches without a receipt, under the same ids.
    A failing batch does not stop the others: all are attempted, then the task fails naming the
    failed batches and where their files are; without Airflow retries when the API refused every
    failed batch (HTTP 4xx), with them when any failure may heal (unreachable, 408, 429, 5xx).

    :param claimed: the claim step's result, ``[{"filename", "backup_path", ...}]`` (templated)
    :param uploaded_by: who uploaded the files (templated)
    :param source: where the files came from (templated)
    :param profile_code: processing profile (templated); the connection's ``profile_code`` when empty
    :param batch_size: files per API call (templated; 5, as in the seed)
    :param max_in_flight: API requests in flight at once (templated)
    :param document_api_conn_id: the ``outamation_document_api`` connection
    :param sftp_conn_id: the ``sftp`` connection holding the files; receipts are written there
    :param api_url: the API's URL, overriding the connection's (a project entry's ``api_url``)
    :param hook_kwargs: extra ``DocumentApiHook`` arguments (``timeout``, ``max_retries``, ...)
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
        claimed: Sequence[Mapping[str, Any]] | XComArg,
        uploaded_by: str,
        source: str,
        profile_code: str | None = None,
        batch_size: int | str = DEFAULT_BATCH_SIZE,
        max_in_flight: int | str = DEFAULT_MAX_IN_FLIGHT,
        document_api_conn_id: str = DocumentApiHook.default_conn_name,
        sftp_conn_id: str | None = None,
        api_url: str | None = None,
        hook_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.claimed = claimed
        self.uploaded_by = uploaded_by
        self.source = source
        self.profile_code = profile_code
        self.batch_size = batch_size
        self.max_in_flight = max_in_flight
        self.document_api_conn_id = document_api_conn_id
        self.sftp_conn_id = sftp_conn_id
        self.hook_kwargs = {**({"api_url": api_url} if api_url else {}), **(hook_kwargs or {})}

    def execute(self, context: Context) -> dict[str, Any]:
        """Send every unsent batch; return ``{"batches", "sent", "already_sent", "failed", ...}``."""
        files = [dict(item) for item in self.claimed or []]  # type: ignore[union-attr]  # resolved by now
        batches = split_into_batches(files, int(self.batch_size))
        api = DocumentApiHook(self.document_api_conn_id, **self.hook_kwargs)
        sftp = PooledSFTPHook(self.sftp_conn_id) if self.sftp_conn_id else None
        prepared = [api.prepare_batch(b, self.uploaded_by, self.source, self.profile_code) for b in batches]
        files_of = {p.message_id: b for p, b in zip(prepared, batches, strict=True)}
        already = self._receipted(sftp, batches) & files_of.keys()
        pending = [p for p in prepared if p.message_id not in already]
        self.log.info(
            "%d file(s) in %d batch(es) of up to %s; %d already sent (receipts), sending %d, %s at a time",
            len(files),
            len(batches),
            self.batch_size,
            len(already),
            len(pending),
            self.max_in_flight,
        )
        failures: dict[str, DocumentApiError] = {}
        try:
            for batch, outcome in api.send_batches(pending, int(self.max_in_flight)):
                label = batch_label(files_of[batch.message_id])
                if isinstance(outcome, DocumentApiError):
                    failures[batch.message_id] = outcome
                    self.log.error("Batch %s: %s failed: %s", batch.message_id, label, outcome)
                    continue
                self.log.info("%s", _accepted_line(outcome, files_of[batch.message_id]))
                if sftp is not None:
                    record_receipts(sftp, batch.message_id, files_of[batch.message_id])
        finally:
            api.close()
        summary = {
            "batches": len(batches),
            "files": len(files),
            "sent": len(pending) - len(failures),
            "already_sent": len(already),
            "failed": len(failures),
            "message_ids": [p.message_id for p in prepared],
            "failed_ids": sorted(failures),
        }
        self.log.info(
            "Sent %(sent)d batch(es), %(already_sent)d already sent, %(failed)d failed, of %(batches)d",
            summary,
        )
        if failures:
            message = self._failure_message(failures, files_of)
            if all(isinstance(error, DocumentApiRejectedError) for error in failures.values()):
                raise DocumentApiRejectedError(message)  # no Airflow retry: every batch was refused
            raise DocumentApiError(message)
        return summary

    def _receipted(self, sftp: PooledSFTPHook | None, batches: list[list[dict[str, Any]]]) -> set[str]:
        """The message ids with a receipt in every in-progress folder of this claim (none without sftp)."""
        if sftp is None:
            return set()
        folders = {folder for batch in batches for folder in _folders(batch)}
        return set().union(*(sftp.sent_message_ids(folder) for folder in sorted(folders)))

    @staticmethod
    def _failure_message(
        failures: Mapping[str, DocumentApiError], files_of: Mapping[str, Sequence[Mapping[str, Any]]]
    ) -> str:
        lines = []
        for message_id, error in list(failures.items())[:FAILURES_NAMED]:
            folders = ", ".join(sorted(_folders(files_of[message_id])))
            status = f"HTTP {error.status}" if error.status else "no answer"
            lines.append(f"{message_id} ({status}; {batch_label(files_of[message_id])} in {folders})")
        more = f" and {len(failures) - FAILURES_NAMED} more" if len(failures) > FAILURES_NAMED else ""
        return (
            f"{len(failures)} batch(es) failed: {'; '.join(lines)}{more}. Their files stay where they are "
            "and have no receipt; clearing this task resends only them, under the same ids"
        )
