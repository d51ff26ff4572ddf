"""BatchFilesOperator: claimed files -> batches for a mapped SubmitBatchOperator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context, XComArg

from airflow_outamation.batching import DEFAULT_BATCH_SIZE, split_into_batches
from airflow_outamation.operators.sftp import claimed_file_dicts


class BatchFilesOperator(BaseOperator):
    """
    Split the claimed files into batches of ``batch_size`` in a stable order (by file name).

    Returns a list of batches for ``SubmitBatchOperator.partial(...).expand(batch=...)``; when
    nothing was claimed the list is empty and the mapped task is skipped, not failed.

    The batches go to XCom whole (the mapped tasks need them): about 440 bytes per claimed file.
    At volume, :class:`~airflow_outamation.operators.document_api.SubmitBatchesOperator` sends every
    batch in one task and keeps XCom small.

    :param claimed: the claim step's result: its summary (the files are read from the claim's record
        through ``sftp_conn_id``) or its files ``[{"filename", "source_path", "backup_path"}]`` (templated)
    :param batch_size: files per API call (templated; 5, as in ``SftpService``)
    :param sftp_conn_id: Airflow ``sftp`` connection the claim's record is read through (for a summary)
    """

    template_fields: Sequence[str] = ("claimed", "batch_size")
    ui_color = "#e8f6f3"

    def __init__(
        self,
        *,
        claimed: Mapping[str, Any] | Sequence[Mapping[str, Any]] | XComArg,
        batch_size: int = DEFAULT_BATCH_SIZE,
        sftp_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.claimed = claimed
        self.batch_size = batch_size
        self.sftp_conn_id = sftp_conn_id

    def execute(self, context: Context) -> list[list[dict[str, Any]]]:
        files = claimed_file_dicts(self.claimed, self.sftp_conn_id)  # type: ignore[arg-type]  # resolved by now
        batches = split_into_batches(files, int(self.batch_size))
        self.log.info(
            "%d claimed file(s) -> %d batch(es) of up to %s", len(files), len(batches), self.batch_size
        )
        return batches
