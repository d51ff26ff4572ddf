"""BatchFilesOperator: claimed files -> batches for a mapped SubmitBatchOperator."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context, XComArg

from airflow_outamation.batching import DEFAULT_BATCH_SIZE, split_into_batches


class BatchFilesOperator(BaseOperator):
    """
    Split the claimed files into batches of ``batch_size`` in a stable order (by file name).

    Returns a list of batches for ``SubmitBatchOperator.partial(...).expand(batch=...)``; when
    nothing was claimed the list is empty and the mapped task is skipped, not failed.

    :param claimed: the claim step's result, ``[{"filename", "source_path", "backup_path"}]`` (templated)
    :param batch_size: files per API call (templated; 5, as in ``SftpService``)
    """

    template_fields: Sequence[str] = ("claimed", "batch_size")
    ui_color = "#e8f6f3"

    def __init__(
        self,
        *,
        claimed: Sequence[Mapping[str, Any]] | XComArg,
        batch_size: int = DEFAULT_BATCH_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.claimed = claimed
        self.batch_size = batch_size

    def execute(self, context: Context) -> list[list[dict[str, Any]]]:
        files = [dict(file) for file in self.claimed or []]  # type: ignore[union-attr]  # resolved by now
        batches = split_into_batches(files, int(self.batch_size))
        self.log.info(
            "%d claimed file(s) -> %d batch(es) of up to %s", len(files), len(batches), self.batch_size
        )
        return batches
