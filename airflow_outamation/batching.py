"""Split claimed files into API batches: a stable order, a fixed size (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from airflow_outamation.name_text import printable

T = TypeVar("T", bound=Mapping[str, Any])

DEFAULT_BATCH_SIZE = 5
#: The checksum a project may ask for (``checksum: sha256``); a file carries it under this key.
SHA256 = "sha256"
#: Checksums the payload can carry per file.
CHECKSUMS = (SHA256,)


def split_into_batches(files: Sequence[T], batch_size: int = DEFAULT_BATCH_SIZE) -> list[list[T]]:
    """
    Sort ``files`` by ``filename`` (then ``backup_path``) and cut them into batches of ``batch_size``.

    The order does not depend on the order the files came in, so a re-run builds the same batches
    and each batch keeps its content-derived message id.

    :param files: claimed files, each with ``filename`` and ``backup_path``
    :param batch_size: files per batch (the last one may be smaller)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    ordered = sorted(files, key=lambda f: (str(f["filename"]), str(f.get("backup_path", ""))))
    return [list(ordered[start : start + batch_size]) for start in range(0, len(ordered), batch_size)]


def as_limit(value: int | str | None) -> int | None:
    """A cap given as a number or as rendered template text (``"500"``); ``None`` or empty for no cap."""
    if value is None or str(value).strip() in ("", "None"):
        return None
    limit = int(value)
    if limit < 1:
        raise ValueError(f"a file cap must be at least 1, got {limit}")
    return limit


#: File names one log line lists at most.
NAMES_LOGGED = 10


def name_list(names: Sequence[str], limit: int = NAMES_LOGGED, total: int | None = None) -> str:
    """
    ``a.pdf, b.pdf, c.pdf``, or the first ``limit`` names and ``… and N more``: a bounded list for logs.

    Names are :func:`printable`.

    :param names: the names, in the order to list them
    :param limit: names listed at most
    :param total: how many names there are when ``names`` holds only the first ones (``None``: all)
    """
    shown = ", ".join(printable(name) for name in names[:limit])
    more = (len(names) if total is None else total) - min(limit, len(names))
    return f"{shown} … and {more} more" if more > 0 else shown


def _span(names: Sequence[str]) -> str:
    """``first.pdf … last.pdf``, or the one name (:func:`printable`)."""
    first, last = printable(names[0]), printable(names[-1])
    return first if len(names) == 1 else f"{first} … {last}"


def batch_label(batch: Sequence[Mapping[str, Any]]) -> str:
    """``first.pdf … last.pdf (5)``: a batch's file names, bounded, for logs and mapped task labels."""
    names = [str(item["filename"]) for item in batch]
    return f"{_span(names)} ({len(names)})"


def describe_batch(batch: Sequence[Mapping[str, Any]], number: int, total: int) -> str:
    """
    ``batch 2/3: a.pdf … e.pdf (5 files): a.pdf, b.pdf, c.pdf, d.pdf, e.pdf``: one log line per batch.

    :param batch: the batch's files, each with ``filename``
    :param number: the batch's number, from 1
    :param total: how many batches the claim has
    """
    names = [str(item["filename"]) for item in batch]
    files = "1 file" if len(names) == 1 else f"{len(names)} files"
    return f"batch {number}/{total}: {_span(names)} ({files}): {name_list(names)}"
