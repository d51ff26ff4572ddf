"""Batching and the run-derived names of the claim step."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_outamation.batching import split_into_batches
from airflow_outamation.operators.sftp import run_date


def _files(names: list[str]) -> list[dict[str, Any]]:
    return [{"filename": n, "source_path": f"/in/{n}", "backup_path": f"/ip/{n}"} for n in names]


def test_twelve_files_make_batches_of_five_five_and_two() -> None:
    batches = split_into_batches(_files([f"doc{i:02}.pdf" for i in range(12)]))
    assert [len(b) for b in batches] == [5, 5, 2]
    assert batches[2] == _files(["doc10.pdf", "doc11.pdf"])


def test_order_is_by_name_whatever_the_input_order() -> None:
    names = ["c.pdf", "a.pdf", "b.pdf", "e.pdf", "d.pdf"]
    assert split_into_batches(_files(names), 2) == split_into_batches(_files(sorted(names)), 2)
    assert [f["filename"] for f in split_into_batches(_files(names), 2)[0]] == ["a.pdf", "b.pdf"]


def test_empty_claim_gives_no_batches_and_bad_size_is_refused() -> None:
    assert split_into_batches([]) == []
    with pytest.raises(ValueError, match="at least 1"):
        split_into_batches(_files(["a.pdf"]), 0)


def test_date_folder_comes_from_the_run_not_the_clock() -> None:
    late = datetime(2026, 11, 25, 23, 59, 59, tzinfo=timezone.utc)
    scheduled = {
        "logical_date": late,
        "dag_run": SimpleNamespace(run_after=datetime(2026, 11, 26, tzinfo=timezone.utc)),
    }
    assert run_date(scheduled).strftime("%m%d%Y") == "11252026"  # type: ignore[arg-type]
    manual = {"logical_date": None, "dag_run": SimpleNamespace(run_after=late)}
    assert run_date(manual).strftime("%m%d%Y") == "11252026"  # type: ignore[arg-type]
