"""The schema of project entries: each entry is checked on its own, with every problem named."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_outamation.projects import InvalidEntry, Project, parse_entry, parse_projects
from airflow_outamation.readiness import (
    DEFAULT_MIN_SIZE,
    DEFAULT_PATTERN,
    DEFAULT_STABILITY_DELAY,
    ReadinessSettings,
)

GOOD: dict[str, Any] = {
    "project_id": "acme",
    "sftp_conn_id": "sftp_acme",
    "document_api_conn_id": "api_acme",
    "base_path": "/upload/acme",
    "profile_code": "007",
}


def problems(**changes: Any) -> tuple[str, ...]:
    entry = {key: value for key, value in {**GOOD, **changes}.items() if value is not ...}
    parsed = parse_entry(entry, 3)
    assert isinstance(parsed, InvalidEntry)
    return parsed.problems


def test_a_minimal_entry_gets_every_default() -> None:
    project = parse_entry(GOOD, 0)
    assert isinstance(project, Project)
    assert (project.pattern, project.stability_delay, project.min_size) == (
        DEFAULT_PATTERN,
        DEFAULT_STABILITY_DELAY,
        DEFAULT_MIN_SIZE,
    )
    assert (project.source_dir, project.in_progress_dir, project.timezone) == ("input", "in_progress", "UTC")
    assert (project.schedule, project.completion, project.batch_size) == (None, "keep", 5)


def test_an_event_mode_entry_overlaps_its_runs_and_sweeps_unless_told_otherwise() -> None:
    event = parse_entry({**GOOD, "schedule": "event"}, 0)
    told = parse_entry({**GOOD, "schedule": "event", "max_active_runs": 1, "sweep_interval": None}, 0)
    cron = parse_entry({**GOOD, "schedule": "@hourly"}, 0)
    assert isinstance(event, Project)
    assert isinstance(told, Project)
    assert isinstance(cron, Project)
    assert (event.max_active_runs, event.sweep_interval) == (3, 900)
    assert (told.max_active_runs, told.sweep_interval) == (1, None)
    assert cron.max_active_runs == 1


def test_env_defaults_fill_in_but_the_entry_wins() -> None:
    defaults = {"source_dir": "drop", "in_progress_dir": None, "profile_code": "env_profile"}
    project = parse_entry({**GOOD, "source_dir": "inbox"}, 0, defaults)
    assert isinstance(project, Project)
    assert (project.source_dir, project.in_progress_dir, project.profile_code) == (
        "inbox",
        "in_progress",
        "007",
    )
    without = parse_entry({k: v for k, v in GOOD.items() if k != "profile_code"}, 0, defaults)
    assert isinstance(without, Project)
    assert without.profile_code == "env_profile"


def test_unknown_keys_are_refused_with_a_suggestion() -> None:
    assert problems(base_pth="/x") == ("unknown key 'base_pth' (did you mean 'base_path'?)",)
    assert problems(zzz=1) == ("unknown key 'zzz'",)


def test_every_problem_of_an_entry_is_named() -> None:
    found = problems(sftp_conn_id=..., base_path="upload/acme", batch_size="5", timezone="Mars/Olympus")
    assert found == (
        "sftp_conn_id is required",
        "base_path must be an absolute path (start with '/'), got 'upload/acme'",
        "batch_size must be an integer >= 1 and <= 100, got '5'",
        "timezone must be an IANA time zone name such as 'America/New_York', got 'Mars/Olympus'",
    )


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("project_id", "a b"),
        ("profile_code", 7),
        ("uploaded_by", True),
        ("schedule", "every hour"),
        ("schedule", 15),
        ("poke_interval", 0),
        ("max_active_runs", 1.5),
        ("source_dir", "../beta"),
        ("in_progress_dir", "/abs"),
        ("min_age", -1),
        ("min_size", True),
        ("stability_delay", 601),
        ("max_files_per_run", 0),
        ("max_in_flight", 33),
        ("date_format", "%m/%d/%Y"),
        ("date_format", "fixed"),
        ("api_url", "ftp://x"),
        ("completion", "archive"),
        ("completion_after", -1),
        ("resend_after", 0),
        ("sweep_interval", 5),
        ("sweep_interval", "15m"),
        ("max_send_attempts", 0),
        ("max_send_attempts", 2.5),
        ("retention_days", 0),
        ("base_path", "/upload/../etc"),
        ("name_encoding", "klingon"),
        ("checksum", "md5"),
        ("checksum", "SHA256"),
        ("regex", "INV-("),
        ("regex", 7),
        ("max_age", 0),
        ("done_marker", "../x"),
        ("done_marker", ""),
        ("max_size", 0),
        ("max_size", 1.5),
        ("recursive", "yes"),
    ],
)
def test_bad_values_are_refused(key: str, bad: Any) -> None:
    (problem,) = problems(**{key: bad})
    assert problem.startswith(f"{key} must ")
    assert repr(bad) in problem


@pytest.mark.parametrize(
    ("key", "good"),
    [
        ("schedule", "*/15 * * * *"),
        ("schedule", "@daily"),
        ("schedule", None),
        ("schedule", "event"),
        ("timezone", "America/New_York"),
        ("api_url", "https://api.example.com/v1/process"),
        ("resend_after", None),
        ("completion", "delete"),
        ("completion_after", 600),
        ("max_send_attempts", 3),
        ("retention_days", 7.5),
        ("min_age", 2.5),
        ("checksum", "sha256"),
        ("checksum", None),
        ("regex", r"INV-\d+\.pdf"),
        ("max_age", 86400),
        ("done_marker", ".done"),
        ("max_size", 50_000_000),
        ("recursive", True),
    ],
)
def test_good_values_are_accepted(key: str, good: Any) -> None:
    project = parse_entry({**GOOD, key: good}, 0)
    assert isinstance(project, Project)
    assert getattr(project, key) == good


def test_a_missing_profile_code_without_profile_code_env_is_the_entrys_error() -> None:
    assert problems(profile_code=...) == (
        "profile_code is missing and the PROFILE_CODE environment variable is not set",
    )


def test_each_entry_is_checked_on_its_own() -> None:
    entries = [GOOD, {**GOOD, "project_id": "beta", "min_size": -1}, "acme", {**GOOD, "base_path": "/other"}]
    projects, invalid = parse_projects(entries)
    assert [p.project_id for p in projects] == ["acme"]
    assert [entry.message for entry in invalid] == [
        "project 'beta' (entry 1) of the projects file is invalid: min_size must be an integer >= 0, got -1",
        "entry 2 of the projects file is invalid: must be a JSON object, got str",
        "entry 3 of the projects file is invalid: project_id 'acme' is used by an earlier entry",
    ]


def test_a_file_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON list"):
        parse_projects({"project_id": "acme"})


def test_a_project_id_is_at_most_airflows_tag_limit() -> None:
    """The id is a DAG tag (Airflow: 100 characters) and part of the DAG id (250)."""
    (problem,) = problems(project_id="a" * 101)
    assert problem.startswith("project_id must be at most 100 characters")
    assert isinstance(parse_entry({**GOOD, "project_id": "a" * 100}, 0), Project)
    assert parse_projects([{**GOOD, "project_id": "a" * 101}])[1][0].project_id is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize(
    "key", ["poke_interval", "min_age", "stability_delay", "resend_after", "retention_days"]
)
def test_non_finite_numbers_are_refused(key: str, bad: float) -> None:
    (problem,) = problems(**{key: bad})
    assert problem.startswith(f"{key} must be a finite number")


@pytest.mark.parametrize("bad", ["/upload/acme ", " /upload/acme", "/upload/acme/\t"])
def test_a_base_path_the_runs_would_refuse_is_refused(bad: str) -> None:
    (problem,) = problems(base_path=bad)
    assert problem.startswith("base_path ")
    assert repr(bad) in problem


@pytest.mark.parametrize("bad", [".%m%d%Y", "%m/%d/%Y", "%Y/", "..%d"])
def test_a_date_format_must_give_a_visible_folder_name(bad: str) -> None:
    (problem,) = problems(date_format=bad)
    assert problem.startswith("date_format must be a strftime format giving one visible folder name")


@pytest.mark.parametrize(
    "url",
    [
        "https://probe:hunter2-pass@api.example.com/v1",
        "https://api.example.com/v1?api_key=Qk7-tok3n-9f8e",
        "ftp://probe:hunter2-pass@api.example.com/v1?api_key=Qk7-tok3n-9f8e",
    ],
)
def test_an_invalid_entry_never_shows_a_urls_credentials(url: str) -> None:
    parsed = parse_entry({**GOOD, "api_url": url, "batch_size": 0}, 1)
    assert isinstance(parsed, InvalidEntry)
    assert "hunter2-pass" not in parsed.message
    assert "Qk7-tok3n-9f8e" not in parsed.message
    assert "batch_size" in parsed.message


def test_nested_or_equal_project_folders_make_both_entries_invalid() -> None:
    entries = [
        {**GOOD, "project_id": "outer", "base_path": "/upload/acme"},
        {**GOOD, "project_id": "inner", "base_path": "/upload/acme/east/"},
        {**GOOD, "project_id": "alone", "base_path": "/upload/acme-other"},
        {**GOOD, "project_id": "twin", "base_path": "//upload/acme-other"},
    ]
    projects, invalid = parse_projects(entries)
    assert projects == []
    assert [(entry.index, entry.project_id) for entry in invalid] == [
        (0, "outer"),
        (1, "inner"),
        (2, "alone"),
        (3, "twin"),
    ]
    assert invalid[0].problems == (
        "base_path '/upload/acme' overlaps the folder of project 'inner' (entry 1): '/upload/acme/east/'",
    )
    assert invalid[1].problems == (
        "base_path '/upload/acme/east/' overlaps the folder of project 'outer' (entry 0): '/upload/acme'",
    )
    assert "project 'twin' (entry 3)" in invalid[2].message
    assert "project 'alone' (entry 2)" in invalid[3].message


def test_separate_project_folders_with_a_common_prefix_do_not_overlap() -> None:
    entries = [
        {**GOOD, "project_id": "a", "base_path": "/upload/acme"},
        {**GOOD, "project_id": "b", "base_path": "/upload/acme2"},
        {**GOOD, "project_id": "c", "base_path": "/upload/acme-2/x"},
    ]
    projects, invalid = parse_projects(entries)
    assert (len(projects), invalid) == (3, [])


@pytest.mark.parametrize("key", ["source", "uploaded_by", "profile_code"])
def test_a_url_with_credentials_in_a_sent_value_is_refused_without_showing_them(key: str) -> None:
    """Such a value would be a param of the DAG, shown to every reader: the entry is refused instead."""
    (problem,) = problems(**{key: "https://probe:hunter2-pass@partner.example.com/in?token=Qk7-tok3n-9f8e"})
    assert problem.startswith(f"{key} must not hold a URL with user info, query or fragment")
    assert "hunter2-pass" not in problem
    assert "Qk7-tok3n-9f8e" not in problem


def test_the_readiness_settings_carry_the_entrys_file_selection() -> None:
    project = parse_entry({**GOOD, "min_size": 5, "regex": r"INV-\d+\.pdf"}, 0)
    assert isinstance(project, Project)
    assert project.readiness == ReadinessSettings(min_size=5, regex=r"INV-\d+\.pdf")
