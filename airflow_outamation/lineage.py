"""
OpenLineage datasets of the claim and send steps, for ``apache-airflow-providers-openlineage``.

SFTP folders are named as OpenLineage names SFTP datasets: namespace ``sftp://<host>:<port>``, name
the folder's path; the number of files moved is the dataset's ``fileCount`` statistic. The document
API is a dataset named by its URL without user info, query or fragment. Called by the operators'
``get_openlineage_facets_on_complete``, which only the OpenLineage provider calls: its classes are
imported there, so this package does not need it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from paramiko.config import SSH_PORT

from airflow_outamation.hooks.document_api import display_url

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.generated.base import InputDataset, OutputDataset

    from airflow_outamation.hooks.sftp import PooledSFTPHook


def sftp_namespace(hook: PooledSFTPHook) -> str:
    """``sftp://<host>:<port>`` of the hook's server (no user, no password)."""
    return f"sftp://{hook.remote_host}:{hook.port or SSH_PORT}"


def sftp_inputs(namespace: str, counts: Counter[str]) -> list[InputDataset]:
    """One input dataset per folder, with the number of files taken from it."""
    from openlineage.client.generated.base import InputDataset
    from openlineage.client.generated.input_statistics_input_dataset import InputStatisticsInputDatasetFacet

    return [
        InputDataset(
            namespace=namespace,
            name=folder,
            inputFacets={"inputStatistics": InputStatisticsInputDatasetFacet(fileCount=count)},
        )
        for folder, count in sorted(counts.items())
    ]


def sftp_outputs(namespace: str, counts: Counter[str]) -> list[OutputDataset]:
    """One output dataset per folder, with the number of files put in it."""
    from openlineage.client.generated.base import OutputDataset

    return [
        OutputDataset(
            namespace=namespace,
            name=folder,
            outputFacets={"outputStatistics": output_statistics(count)},
        )
        for folder, count in sorted(counts.items())
    ]


def output_statistics(file_count: int) -> Any:
    """The ``outputStatistics`` facet of ``file_count`` files."""
    from openlineage.client.generated.output_statistics_output_dataset import (
        OutputStatisticsOutputDatasetFacet,
    )

    return OutputStatisticsOutputDatasetFacet(fileCount=file_count)


def api_output(url: str, file_count: int) -> OutputDataset:
    """The document API endpoint: namespace ``<scheme>://<host>[:<port>]``, name its path."""
    from openlineage.client.generated.base import OutputDataset

    parts = urlsplit(display_url(url))
    return OutputDataset(
        namespace=f"{parts.scheme}://{parts.netloc}",
        name=parts.path or "/",
        outputFacets={"outputStatistics": output_statistics(file_count)},
    )


def folder_counts(paths: Iterable[str]) -> Counter[str]:
    """How many of ``paths`` each folder holds."""
    return Counter(path.rpartition("/")[0] or "/" for path in paths)


def lineage(inputs: list[InputDataset], outputs: list[OutputDataset]) -> OperatorLineage:
    """The operator's lineage."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=inputs, outputs=outputs)
