"""SubmitBatchOperator: one signed document API call per batch, made for dynamic task mapping."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_outamation.hooks.document_api import DocumentApiHook
from airflow_outamation.hooks.sftp import PooledSFTPHook


class SubmitBatchOperator(BaseOperator):
    """
    Post one batch of claimed files to the document API and return a small summary.

    Map it over the batches of ``BatchFilesOperator``:
    ``SubmitBatchOperator.partial(task_id=..., uploaded_by=..., source=...).expand(batch=batches)``.
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
        summary = result.summary()
        if self.sftp_conn_id:
            self._record_sent(summary["message_id"])
        return summary

    def _record_sent(self, message_id: str) -> None:
        by_folder: dict[str, list[str]] = defaultdict(list)
        for item in self.batch:
            by_folder[posixpath.dirname(item["backup_path"])].append(item["backup_path"])
        sftp = PooledSFTPHook(ssh_conn_id=self.sftp_conn_id)
        for folder, paths in by_folder.items():
            self.log.info(
                "Batch %s sent; receipt %s", message_id, sftp.record_sent(folder, message_id, paths)
            )
