"""SubmitBatchOperator: one signed document API call per batch, made for dynamic task mapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_outamation.hooks.document_api import DocumentApiHook


class SubmitBatchOperator(BaseOperator):
    """
    Post one batch of claimed files to the document API and return a small summary.

    Map it over the batches of ``BatchFilesOperator``:
    ``SubmitBatchOperator.partial(task_id=..., uploaded_by=..., source=...).expand(batch=batches)``.
    The batch's message id is derived from its content, so a cleared and re-run task resends it
    under the same id and the API can de-duplicate it.

    :param batch: the files of the batch; each needs ``filename`` and ``backup_path``
    :param uploaded_by: who uploaded the files (templated)
    :param source: where the files came from (templated)
    :param profile_code: processing profile (templated); the connection's ``profile_code`` when empty
    :param document_api_conn_id: the ``outamation_document_api`` connection
    :param hook_kwargs: extra ``DocumentApiHook`` arguments (``timeout``, ``max_retries``, ...)
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.batch = batch
        self.uploaded_by = uploaded_by
        self.source = source
        self.profile_code = profile_code
        self.document_api_conn_id = document_api_conn_id
        self.hook_kwargs = dict(hook_kwargs or {})

    def execute(self, context: Context) -> dict[str, Any]:
        """Submit the batch; return ``{"message_id", "status", "file_count", "attempts"}``."""
        hook = DocumentApiHook(self.document_api_conn_id, **self.hook_kwargs)
        try:
            result = hook.submit_batch(self.batch, self.uploaded_by, self.source, self.profile_code)
        finally:
            hook.close()
        return result.summary()
