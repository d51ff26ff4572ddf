"""
Rules for project entries that need no I/O: the entries' schema, and which folder a run may work in.

An entry of the projects file is checked on its own (:func:`parse_projects`): each valid entry
becomes a :class:`Project` with every default filled in, each invalid one an :class:`InvalidEntry`
naming the entry and all its problems, so one bad entry never hides the others.
"""

from __future__ import annotations

import codecs
import difflib
import functools
import json
import math
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from airflow_outamation.alerts.expectations import WEEKDAYS
from airflow_outamation.batching import CHECKSUMS
from airflow_outamation.claims.names import DEFAULT_NAME_ENCODING
from airflow_outamation.ingestion_status import status_dates
from airflow_outamation.readiness import (
    DEFAULT_MIN_AGE,
    DEFAULT_MIN_SIZE,
    DEFAULT_PATTERN,
    DEFAULT_STABILITY_DELAY,
    ReadinessSettings,
)
from airflow_outamation.redaction import Scrubber, url_secrets

#: ``schedule`` value of a project whose runs are started by new files (AssetWatcher), not a clock.
EVENT_SCHEDULE = "event"
#: What happens to a file once its batch was accepted.
COMPLETIONS = ("keep", "move", "delete")
_PROJECT_ID = re.compile(r"[A-Za-z0-9_.-]+")
#: Longest ``stability_delay`` in seconds (an entry's, or a run's from the trigger form).
MAX_STABILITY_DELAY = 600
#: Largest ``batch_size`` (files per API call) and ``max_files_per_run``, in entries and the trigger form.
MAX_BATCH_SIZE = 100
MAX_FILES_PER_RUN = 100_000
#: Longest ``project_id``: Airflow's limit of a DAG tag (the id is one); its DAG id stays far below 250.
PROJECT_ID_MAX = 100
#: ``max_active_runs`` of an event-mode entry that sets none: a file ready while a run works starts
#: the next run at once (Airflow defers asset-triggered runs while a DAG is at ``max_active_runs``);
#: claims are exclusive and sends leased, so overlapping runs never take or send a file twice.
EVENT_MAX_ACTIVE_RUNS = 3
#: Shortest ``sweep_interval`` in seconds: a sweep run is a whole DAG run.
MIN_SWEEP_INTERVAL = 10
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
    regex: str | None = None
    max_age: float | None = None
    done_marker: str | None = None
    max_size: int | None = None
    recursive: bool = False
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
    sweep_interval: float | None = 900
    name_encoding: str = DEFAULT_NAME_ENCODING
    max_send_attempts: int = 5
    retention_days: float = 30
    expect_files_by: str | None = None
    expect_files_on: Sequence[str] = ()
    max_unsent_age: float | None = None
    alert_on_rejected: bool = True
    max_unreachable: float | None = None
    alert_targets: Mapping[str, Any] | None = None
    checksum: str | None = None

    @property
    def readiness(self) -> ReadinessSettings:
        """The project's readiness settings (its entry's keys of the same names), for sensor and triggers."""
        names = [field.name for field in fields(ReadinessSettings)]
        return ReadinessSettings(**{name: getattr(self, name) for name in names})


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
        if not math.isfinite(value):
            return f"must be a finite number ({span}), got {value!r}"
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
    if len(value) > PROJECT_ID_MAX:
        return f"must be at most {PROJECT_ID_MAX} characters (Airflow's tag limit), got {len(value)}"
    return None


def _absolute_path(value: Any) -> str | None:
    problem = _text(value)
    if problem is None and not value.startswith("/"):
        return f"must be an absolute path (start with '/'), got {value!r}"
    if problem is None:
        try:  # the runs' own rule: a folder every run would refuse is no project folder
            confine_path(value, value)
        except ValueError as exc:
            return f"must be a folder the runs accept ({exc}), got {value!r}"
    return problem


def _regex(value: Any) -> str | None:
    problem = _text(value)
    if problem is None:
        try:
            ReadinessSettings(regex=value)
        except ValueError as exc:
            problem = f"must be a valid regular expression: {exc}"
    return problem


def _suffix(value: Any) -> str | None:
    problem = _text(value)
    if problem is None and ("/" in value or value != value.strip()):
        problem = f"must be a file name suffix (no '/', no leading or trailing spaces), got {value!r}"
    return problem


def _folder(value: Any) -> str | None:
    problem = _text(value)
    if problem is None and (value.startswith("/") or ".." in value.split("/")):
        return f"must be a folder inside base_path (relative, no '..'), got {value!r}"
    return problem


@functools.lru_cache(maxsize=256)
def _valid_cron(expression: str) -> bool:
    """Whether ``expression`` is a cron expression; cached, as most entries share a few schedules."""
    return bool(croniter.is_valid(expression))


def _schedule(value: Any) -> str | None:
    if value is None or value == EVENT_SCHEDULE or value in _CRON_PRESETS:
        return None
    if isinstance(value, str) and _valid_cron(value):
        return None
    return f"must be a cron expression, a preset such as '@daily', null or 'event', got {value!r}"


def _date_format(value: Any) -> str | None:
    problem = _text(value)
    if problem is not None:
        return problem
    names = status_dates(_SAMPLE_DAY, "UTC", value)  # the dated folders' names, as runs and status make them
    if names[0] == value or any(not name or "/" in name or name.startswith(".") for name in names):
        return f"must be a strftime format giving one visible folder name (such as '%m%d%Y'), got {value!r}"
    return None


_SAMPLE_DAY = datetime(2026, 11, 26, 1, 30, tzinfo=timezone.utc)


def _encoding(value: Any) -> str | None:
    problem = _text(value)
    if problem is not None:
        return problem
    try:
        codecs.lookup(value)
    except LookupError:
        return f"must be a Python codec name such as 'cp1252' or 'latin-1', got {value!r}"
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


def _clock(value: Any) -> str | None:
    if not isinstance(value, str) or not re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", value):
        return f"must be a time of day 'HH:MM' (24 hours), got {value!r}"
    return None


def _weekdays(value: Any) -> str | None:
    if not isinstance(value, list) or not value or any(day not in WEEKDAYS for day in value):
        return f"must be a non-empty list of {', '.join(map(repr, WEEKDAYS))}, got {value!r}"
    return None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _alert_targets(value: Any) -> str | None:
    if not isinstance(value, dict) or not value or set(value) - {"email", "webhook", "smtp_conn_id"}:
        return (
            'must be an object with "email" (a list of addresses), "webhook" (an http connection id) '
            f'and "smtp_conn_id" (optional), got {value!r}'
        )
    emails = value.get("email", [])
    if not isinstance(emails, list) or any(_text(a) or "@" not in a for a in emails):
        return f"email must be a list of email addresses, got {emails!r}"
    for key in ("webhook", "smtp_conn_id"):
        if key in value and _text(value[key]):
            return f"{key} must be the id of an Airflow connection, got {value[key]!r}"
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
    "stability_delay": _number(0, MAX_STABILITY_DELAY),
    "regex": _optional(_regex),
    "max_age": _optional(_number(0, low_open=True)),
    "done_marker": _optional(_suffix),
    "max_size": _optional(_number(1, integer=True)),
    "recursive": _boolean,
    "batch_size": _number(1, MAX_BATCH_SIZE, integer=True),
    "max_files_per_run": _number(1, MAX_FILES_PER_RUN, integer=True),
    "max_in_flight": _number(1, 32, integer=True),
    "date_format": _date_format,
    "timezone": _timezone,
    "owner": _text,
    "api_url": _api_url,
    "completion": _one_of(*COMPLETIONS),
    "completion_after": _number(0),
    "resend_after": _optional(_number(0, low_open=True)),
    "sweep_interval": _optional(_number(MIN_SWEEP_INTERVAL, 86400)),
    "name_encoding": _encoding,
    "max_send_attempts": _number(1, 100, integer=True),
    "retention_days": _number(0, low_open=True),
    "expect_files_by": _optional(_clock),
    "expect_files_on": _weekdays,
    "max_unsent_age": _optional(_number(0, low_open=True)),
    "alert_on_rejected": _boolean,
    "max_unreachable": _optional(_number(0)),
    "alert_targets": _optional(_alert_targets),
    "checksum": _optional(_one_of(*CHECKSUMS)),
}


def parse_entry(entry: Any, index: int, defaults: Mapping[str, Any] | None = None) -> Project | InvalidEntry:
    """
    Check one entry of the projects file; return its :class:`Project` or an :class:`InvalidEntry`.

    :param entry: the entry as read from JSON
    :param index: its position in the file, to name it in messages
    :param defaults: defaults that replace the built-in ones (``SftpService``'s environment variables:
        ``source_dir``, ``in_progress_dir``, ``profile_code``; ``OUTAMATION_ALERT_TARGETS``'s
        ``alert_targets``); ``None`` values are ignored
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
        elif key != "api_url" and isinstance(value, str) and "://" in value and url_secrets(value):
            problems.append(
                f"{key} must not hold a URL with user info, query or fragment (every reader of the DAG "
                f"would see it), got {value!r}"
            )
    given = {k: v for k, v in (defaults or {}).items() if v is not None}
    from_env = given.get("alert_targets") if "alert_targets" not in entry else None
    if from_env is not None and (problem := _alert_targets(from_env)) is not None:
        problems.append(f"alert_targets of OUTAMATION_ALERT_TARGETS {problem}")
    settings = {**_DEFAULTS, **given, **entry}
    if settings["schedule"] == EVENT_SCHEDULE and "max_active_runs" not in entry:
        settings["max_active_runs"] = EVENT_MAX_ACTIVE_RUNS
    if not problems and not settings["profile_code"]:
        problems.append("profile_code is missing and the PROFILE_CODE environment variable is not set")
    if problems:
        scrub = url_scrubber(entry.values())
        return InvalidEntry(index, usable_id, tuple(scrub(problem) for problem in problems))
    return Project(**settings)


def url_scrubber(values: Iterable[Any]) -> Scrubber:
    """
    Mask the user info, query and fragment of every URL among ``values`` (an entry's), as errors are.

    :param values: an entry's values; the strings holding ``://`` are taken as URLs
    """
    urls = [value for value in values if isinstance(value, str) and "://" in value]
    return Scrubber(part for url in urls for part in url_secrets(url))


def seed_defaults(environ: Mapping[str, str]) -> dict[str, Any]:
    """
    The defaults ``SftpService``'s environment variables give every entry (the DAG's ``ENV_DEFAULTS``).

    :param environ: the environment (``SOURCE_FILES``, ``IN_Progress_Path``, ``PROFILE_CODE``, and
        ``OUTAMATION_ALERT_TARGETS``: the JSON ``alert_targets`` of every entry that has none)
    """
    targets = environ.get("OUTAMATION_ALERT_TARGETS")
    try:
        alert_targets = json.loads(targets) if targets else None
    except ValueError:
        alert_targets = targets  # not JSON: the entries' check names the problem
    return {
        "source_dir": environ.get("SOURCE_FILES"),
        "in_progress_dir": environ.get("IN_Progress_Path"),
        "profile_code": environ.get("PROFILE_CODE") or None,
        "alert_targets": alert_targets,
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
    parsed: list[Project | InvalidEntry] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        checked = parse_entry(entry, index, defaults)
        if isinstance(checked, Project):
            if checked.project_id in seen:
                problem = f"project_id {checked.project_id!r} is used by an earlier entry"
                checked = InvalidEntry(index, None, (problem,))
            seen.add(checked.project_id or "")
        parsed.append(checked)
    valid = {index: p for index, p in enumerate(parsed) if isinstance(p, Project)}
    for index, found in _overlaps(valid).items():
        parsed[index] = InvalidEntry(index, valid[index].project_id, tuple(found))
    projects = [p for p in parsed if isinstance(p, Project)]
    return projects, [p for p in parsed if isinstance(p, InvalidEntry)]


def _overlaps(valid: Mapping[int, Project]) -> dict[int, list[str]]:
    """
    Entry index -> one problem per other project whose folder equals, contains or lies in its own.

    :param valid: the valid projects by entry index
    """
    by_folder: dict[str, list[int]] = {}
    for index, project in valid.items():
        by_folder.setdefault(_normalised(project.base_path), []).append(index)
    pairs: set[tuple[int, int]] = set()
    for folder, indexes in by_folder.items():
        pairs |= {(a, b) for a in indexes for b in indexes if a != b}
        ancestor = folder
        while ancestor != "/":
            ancestor = posixpath.dirname(ancestor)
            for outer in by_folder.get(ancestor, []):
                pairs |= {(inner, outer) for inner in indexes} | {(outer, inner) for inner in indexes}
    found: dict[int, list[str]] = {}
    for index, other in sorted(pairs):
        mine, theirs = valid[index], valid[other]
        found.setdefault(index, []).append(
            f"base_path {mine.base_path!r} overlaps the folder of project {theirs.project_id!r} "
            f"(entry {other}): {theirs.base_path!r}"
        )
    return found


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
