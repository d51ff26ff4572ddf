"""Per-project metric names: one name per project, readable, valid for StatsD."""

from __future__ import annotations

import re

import pytest

from airflow_outamation.metrics import FILES_CLAIMED, per_project_name

PROJECTS = [
    "a.b",
    "a__b",
    "a_b",
    "a-b",
    "a--b",
    "a-db",
    "a.-b",
    "a-.b",
    "ab",
    "a_.b",
    "a._b",
    "émile",
    "e_mile",
]


def test_distinct_projects_get_distinct_names() -> None:
    names = {per_project_name(FILES_CLAIMED, f"outamation_sftp_ingest_{p}") for p in PROJECTS}
    assert len(names) == len(PROJECTS)


@pytest.mark.parametrize("project", PROJECTS)
def test_a_name_is_three_statsd_segments(project: str) -> None:
    name = per_project_name(FILES_CLAIMED, project)
    head, middle, *rest = name.split(".")
    assert (head, rest) == ("outamation", ["files", "claimed"])
    assert re.fullmatch(r"[A-Za-z0-9_-]+", middle)


def test_a_plain_dag_id_keeps_its_name() -> None:
    assert per_project_name(FILES_CLAIMED, "outamation_sftp_ingest_acme") == (
        "outamation.outamation_sftp_ingest_acme.files.claimed"
    )
