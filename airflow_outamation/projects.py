"""
Rules for project entries that need no I/O: the entries' schema, and which folder a run may work in.

An entry of the projects file is checked on its own (:func:`parse_projects`): each valid entry
becomes a :class:`Project` with every default filled in, each invalid one an :class:`InvalidEntry`
naming the entry and all its problems, so one bad entry never hides the others.
"""

from __future__ import annotations

import difflib
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from airflow_outamation.readiness import (
    DEFAULT_MIN_AGE,
    DEFAULT_MIN_SIZE,
    DEFAULT_PATTERN,
    DEFAULT_STABILITY_DELAY,
)

#: ``schedule`` value of a project whose runs are started by new files (AssetWatcher), not a clock.
EVENT_SCHEDULE = "event"
#: What happens to a file once its batch was accepted.
COMPLETIONS = ("keep", "move", "delete")
_PROJECT_ID = re.compile(r"[A-Za-z0-9_.-]+")
_CRON_PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


@dataclass(frozen=True)
class Project:
    """One valid project entry, every optional setting filled in with its default."""

    project_id: str
    sftp_conn_id: str
    document_api_conn_id: str
    base_path: str
    schedule: str | None = None
    profile_code: str | None = None
    uploaded_by: str = "Airflow"
    source: str = "SFTP"
    poke_interval: float = 30
    max_active_runs: int = 1
    source_dir: str = "input"
    in_progress_dir: str = "in_progress"
    pattern: str = DEFAULT_PATTERN
    min_age: float = DEFAULT_MIN_AGE
    min_size: int = DEFAULT_MIN_SIZE
    stability_delay: float = DEFAULT_STABILITY_DELAY
    batch_size: int = 5
    max_files_per_run: int = 5000
    max_in_flight: int = 8
    date_format: str = "%m%d%Y"
    timezone: str = "UTC"
    owner: str = "airflow"
    api_url: str | None = None
    completion: str = "keep"
    completion_after: float = 0
    resend_after: float | None = None
    max_send_attempts: int = 5
    retention_days: float = 30


@dataclass(frozen=True)
class InvalidEntry:
    """
    A project entry that cannot become a DAG, and why.

    :param index: the entry's position in the file (0-based); ``None`` when found after parsing
    :param project_id: its ``project_id`` when that is a usable one, else ``None``
    :param problems: one line per problem
    """

    index: int | None
    project_id: str | None
    problems: tuple[str, ...]

    @property
    def label(self) -> str:
        """``project 'acme' (entry 2)`` or ``entry 2``: how messages name the entry."""
        where = f"entry {self.index}" if self.index is not None else ""
        if not self.project_id:
            return where
        return f"project {self.project_id!r}" + (f" ({where})" if where else "")

    @property
    def message(self) -> str:
        """The entry and all its problems, one sentence."""
        return f"{self.label} of the projects file is invalid: {'; '.join(self.problems)}"


Check = Callable[[Any], "str | None"]
REQUIRED = ("project_id", "sftp_conn_id", "document_api_conn_id", "base_path")
_DEFAULTS = {f.name: f.default for f in fields(Project) if f.name not in REQUIRED}


def _text(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"must be a non-empty string (in quotes), got {value!r}"
    if any(ord(char) < 32 or char == "\x7f" for char in value):
        return f"must not contain control characters, got {value!r}"
    return None


def _number(low: float, high: float | None = None, *, integer: bool = False, low_open: bool = False) -> Check:
    kind = "an integer" if integer else "a number"
    bounds = f"> {low:g}" if low_open else f">= {low:g}"
    span = f"{kind} {bounds}" + (f" and <= {high:g}" if high is not None else "")

    def check(value: Any) -> str | None:
        allowed = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            return f"must be {span}, got {value!r}"
        too_low = value <= low if low_open else value < low
        if too_low or (high is not None and value > high):
            return f"must be {span}, got {value!r}"
        return None

    return check


def _one_of(*choices: str) -> Check:
    return lambda value: (
        None if value in choices else f"must be one of {', '.join(map(repr, choices))}, got {value!r}"
    )


def _project_id(value: Any) -> str | None:
    if not isinstance(value, str) or not _PROJECT_ID.fullmatch(value):
        return f"must be letters, digits, '_', '-' or '.', got {value!r}"
    return None


def _absolute_path(value: Any) -> str | None:
    problem = _text(value)
    if problem is None and not value.startswith("/"):
        return f"must be an absolute path (start with '/'), got {value!r}"
    if problem is None and ".." in value.split("/"):
        return f"must not contain '..', got {value!r}"
    return problem


def _folder(value: Any) -> str | None:
    problem = _text(value)
    if problem is None and (value.startswith("/") or ".." in value.split("/")):
        return f"must be a folder inside base_path (relative, no '..'), got {value!r}"
    return problem


def _schedule(value: Any) -> str | None:
    if value is None or value == EVENT_SCHEDULE or value in _CRON_PRESETS:
        return None
    if isinstance(value, str) and croniter.is_valid(value):
        return None
    return f"must be a cron expression, a preset such as '@daily', null or 'event', got {value!r}"


def _date_format(value: Any) -> str | None:
    problem = _text(value)
    if problem is not None:
        return problem
    sample = datetime(2026, 11, 26, 1, 30).strftime(value)
    if "/" in sample or sample in (".", "..") or sample == value:
        return f"must be a strftime format giving one folder name (such as '%m%d%Y'), got {value!r}"
    return None


def _timezone(value: Any) -> str | None:
    problem = _text(value)
    if problem is not None:
        return problem
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return f"must be an IANA time zone name such as 'America/New_York', got {value!r}"
    return None


def _api_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s/]+\S*", value):
        return f"must be an http:// or https:// URL, got {value!r}"
    return None


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


#: Every key an entry may hold, with the check of its value.
SCHEMA: dict[str, Check] = {
    "project_id": _project_id,
    "sftp_conn_id": _text,
    "document_api_conn_id": _text,
    "base_path": _absolute_path,
    "schedule": _schedule,
    "profile_code": _text,
    "uploaded_by": _text,
    "source": _text,
    "poke_interval": _number(0, 3600, low_open=True),
    "max_active_runs": _number(1, 100, integer=True),
    "source_dir": _folder,
    "in_progress_dir": _folder,
    "pattern": _text,
    "min_age": _number(0),
    "min_size": _number(0, integer=True),
    "stability_delay": _number(0, 600),
    "batch_size": _number(1, 100, integer=True),
    "max_files_per_run": _number(1, 100_000, integer=True),
    "max_in_flight": _number(1, 32, integer=True),
    "date_format": _date_format,
    "timezone": _timezone,
    "owner": _text,
    "api_url": _api_url,
    "completion": _one_of(*COMPLETIONS),
    "completion_after": _number(0),
    "resend_after": _optional(_number(0, low_open=True)),
    "max_send_attempts": _number(1, 100, integer=True),
    "retention_days": _number(0, low_open=True),
}


def parse_entry(entry: Any, index: int, defaults: Mapping[str, Any] | None = None) -> Project | InvalidEntry:
    """
    Check one entry of the projects file; return its :class:`Project` or an :class:`InvalidEntry`.

    :param entry: the entry as read from JSON
    :param index: its position in the file, to name it in messages
    :param defaults: defaults that replace the built-in ones (``SftpService``'s environment variables:
        ``source_dir``, ``in_progress_dir``, ``profile_code``); ``None`` values are ignored
    """
    if not isinstance(entry, dict):
        return InvalidEntry(index, None, (f"must be a JSON object, got {type(entry).__name__}",))
    project_id = entry.get("project_id")
    usable_id = project_id if _project_id(project_id) is None else None
    problems = [f"{key} is required" for key in REQUIRED if key not in entry]
    for key, value in entry.items():
        check = SCHEMA.get(key)
        if check is None:
            close = difflib.get_close_matches(str(key), SCHEMA, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown key {key!r}{hint}")
        elif (problem := check(value)) is not None:
            problems.append(f"{key} {problem}")
    settings = {**_DEFAULTS, **{k: v for k, v in (defaults or {}).items() if v is not None}, **entry}
    if not problems and not settings["profile_code"]:
        problems.append("profile_code is missing and the PROFILE_CODE environment variable is not set")
    if problems:
        return InvalidEntry(index, usable_id, tuple(problems))
    return Project(**settings)


def seed_defaults(environ: Mapping[str, str]) -> dict[str, str | None]:
    """
    The defaults ``SftpService``'s environment variables give every entry (the DAG's ``ENV_DEFAULTS``).

    :param environ: the environment (``SOURCE_FILES``, ``IN_Progress_Path``, ``PROFILE_CODE``)
    """
    return {
        "source_dir": environ.get("SOURCE_FILES"),
        "in_progress_dir": environ.get("IN_Progress_Path"),
        "profile_code": environ.get("PROFILE_CODE") or None,
    }


def parse_projects(
    entries: Any, defaults: Mapping[str, Any] | None = None
) -> tuple[list[Project], list[InvalidEntry]]:
    """
    Check every entry of the projects file on its own; a repeated ``project_id`` is invalid too.

    :param entries: the file's JSON (a list of entries)
    :param defaults: see :func:`parse_entry`
    :return: the valid projects and the invalid entries, each in file order
    :raises ValueError: the file's JSON is not a list
    """
    if not isinstance(entries, list):
        raise ValueError(f"the projects file must hold a JSON list of entries, got {type(entries).__name__}")
    projects: list[Project] = []
    invalid: list[InvalidEntry] = []
    for index, entry in enumerate(entries):
        parsed = parse_entry(entry, index, defaults)
        if isinstance(parsed, Project) and any(p.project_id == parsed.project_id for p in projects):
            parsed = InvalidEntry(
                index, None, (f"project_id {parsed.project_id!r} is used by an earlier entry",)
            )
        (projects if isinstance(parsed, Project) else invalid).append(parsed)  # type: ignore[arg-type]
    return projects, invalid


def confine_path(requested: str, root: str) -> str:
    """
    Resolve a run's ``base_path`` inside the project's configured folder ``root``, or refuse it.

    A relative value is a subfolder of ``root``; an absolute one must be ``root`` or lie below it.
    ``..`` segments and control characters are refused outright (not normalised away), so a
    value from the UI's trigger form can narrow a project's folder but never widen it.

    :param requested: the value given for the run (e.g. the ``base_path`` param)
    :param root: the project's configured base path (absolute)
    :return: the normalised absolute path
    :raises ValueError: the value leaves ``root`` or is malformed
    """
    if not posixpath.isabs(root):
        raise ValueError(f"the project's base path {root!r} is not absolute")
    root = _normalised(root)
    text = str(requested).strip()
    if not text:
        raise ValueError("base_path is empty")
    if any(ord(char) < 32 or char == "\x7f" for char in text):
        raise ValueError(f"base_path {text!r} contains control characters")
    if ".." in text.split("/"):
        raise ValueError(f"base_path {text!r} contains '..'; it must stay inside {root}")
    path = _normalised(text if posixpath.isabs(text) else posixpath.join(root, text))
    if path != root and not path.startswith(root.rstrip("/") + "/"):
        raise ValueError(f"base_path {text!r} is outside the project's folder {root}")
    return path


def _normalised(path: str) -> str:
    """``posixpath.normpath`` of an absolute path, with POSIX's leading ``//`` folded to ``/`` too."""
    return posixpath.normpath("/" + path.lstrip("/"))
