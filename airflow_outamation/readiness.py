"""
Which files in a drop folder are ready: pure rules over two directory listings, no I/O.

A file is ready when it did not change between two listings taken at least the stability delay
apart (an uploader still writing changes its size or mtime), it is a regular file matching the
pattern, it is neither a dotfile nor a temporary upload name, and it is big and old enough.
The sync hook, the sensor's poke mode and the trigger all decide readiness here.

A listing's keys are paths relative to the listed folder: a name, or ``sub/x.pdf`` when the folder
is listed recursively (:func:`add_entries`). The name rules look at the base name.
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, TypeVar, get_args, get_type_hints

from airflow_outamation.name_text import path_fields, path_of

#: Which names count, by default (case-insensitive glob).
DEFAULT_PATTERN = "*.pdf"
#: Seconds a file's size and mtime must not change, by default.
DEFAULT_STABILITY_DELAY = 1.2
#: Seconds since a file's last modification it must have, by default.
DEFAULT_MIN_AGE = 0.0
#: Smallest size in bytes that counts, by default (1 rejects zero-byte files).
DEFAULT_MIN_SIZE = 1

#: Names uploaders give files while they are still being written.
TEMPORARY_NAME_PATTERNS: tuple[str, ...] = ("*.part", "*.filepart", "*.tmp", "~*", "*.crdownload")
#: Levels of subfolders a recursive listing descends into below the listed folder.
MAX_DEPTH = 10


@dataclass(frozen=True)
class FileState:
    """What one directory listing says about one entry."""

    size: int
    mtime: float
    is_regular: bool = True


@dataclass(frozen=True)
class RemoteFile:
    """A ready file on the SFTP server, as it is passed on through XCom."""

    path: str
    size: int
    mtime: float

    @property
    def filename(self) -> str:
        return posixpath.basename(self.path)

    def to_dict(self) -> dict[str, Any]:
        """
        A JSON-serialisable dict (``path``, ``filename``, ``size``, ``mtime``) for XCom.

        A path that is not UTF-8 gets a printable ``path`` and ``filename`` and its bytes in
        ``path_escaped`` (:func:`~airflow_outamation.name_text.path_fields`).
        """
        return {**asdict(self), **path_fields(self.path)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RemoteFile:
        return cls(path=path_of(data), size=int(data["size"]), mtime=float(data["mtime"]))


Listing = Mapping[str, FileState]
#: A claimed file as a dict (``filename``, ``size``, ...).
FileT = TypeVar("FileT", bound=Mapping[str, Any])


@dataclass(frozen=True)
class ReadinessSettings:
    """
    Which files of a drop folder count as ready: one value for the hook, sensor, triggers and DAG.

    :param pattern: case-insensitive glob the names must match
    :param stability_delay: seconds a file's size and mtime must stay unchanged
    :param min_age: seconds since its last modification a file must have
    :param min_size: smallest size in bytes that counts (1 rejects zero-byte files)
    :param regex: regular expression the whole name must match (case-sensitive, ``(?i)`` for not),
        instead of ``pattern``; ``None``: ``pattern`` decides
    :param max_age: seconds since its last modification a file may have at most; older files are
        left alone (reported by :func:`too_old`); ``None``: no limit
    :param done_marker: suffix of the marker file an uploader writes once a file is complete
        (``".done"``: ``x.pdf`` is ready only beside an ``x.pdf.done`` at least as new as it); markers
        are never candidates themselves; ``None``: no marker needed
    :param max_size: largest size in bytes a file may have to be sent; a larger one is ready (it
        is claimed) but set aside unsent (:func:`too_big`); ``None``: no limit
    :param recursive: list the subfolders too (:func:`add_entries`: no dot-folder, temporary name
        or symbolic link, at most :data:`MAX_DEPTH` levels); their files are keyed ``sub/x.pdf``
    :raises ValueError: ``regex`` is not a valid regular expression
    """

    pattern: str = DEFAULT_PATTERN
    stability_delay: float = DEFAULT_STABILITY_DELAY
    min_age: float = DEFAULT_MIN_AGE
    min_size: int = DEFAULT_MIN_SIZE
    regex: str | None = None
    max_age: float | None = None
    done_marker: str | None = None
    max_size: int | None = None
    recursive: bool = False

    def __post_init__(self) -> None:
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regex {self.regex!r}: {exc}") from None

    @property
    def names(self) -> str:
        """Which names count, for logs and docs: the pattern, or ``regex <expression>``."""
        return self.pattern if self.regex is None else f"regex {self.regex}"

    def matches(self, name: str) -> bool:
        """Whether ``name`` is one of the names that count: ``regex`` matches it whole, else ``pattern``."""
        if self.regex is not None:
            return re.fullmatch(self.regex, name) is not None
        return matches_pattern(name, self.pattern)

    def serialize(self) -> dict[str, Any]:
        """
        The settings as a JSON-serialisable dict, which :meth:`from_dict` reads.

        ``None`` and ``False`` are left out: settings without them read as before they existed.
        """
        return {
            name: value for name, value in asdict(self).items() if value is not None and value is not False
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReadinessSettings:
        """
        Settings from a dict such as :meth:`serialize`'s; missing or ``None`` values take the defaults.

        Values are converted to the fields' types, so a rendered template (``"1.5"``) works.

        :raises TypeError: a key is not a setting
        :raises ValueError: a value does not convert
        """
        types = get_type_hints(cls)
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise TypeError(f"unknown readiness setting(s): {', '.join(unknown)}")
        return cls(
            **{name: _converted(types[name], value) for name, value in data.items() if value is not None}
        )

    @classmethod
    def of(
        cls, settings: ReadinessSettings | Mapping[str, Any] | None = None, **overrides: Any
    ) -> ReadinessSettings:
        """
        ``settings`` (a value, its dict, or ``None`` for the defaults) with the ``overrides`` not ``None``.

        How the loose keyword arguments of the sensor and triggers (``pattern=``, ...) join ``settings=``.
        """
        return cls.from_dict(settings_dict(settings, **overrides))


def _converted(kind: Any, value: Any) -> Any:
    """``value`` as a ``kind`` (as an ``X`` for ``X | None``); a ``bool`` also from ``"true"``/``"false"``."""
    if kind is bool and isinstance(value, str):
        if value.strip().lower() not in ("true", "false"):
            raise ValueError(f"not true or false: {value!r}")
        return value.strip().lower() == "true"
    return next((option for option in get_args(kind) if option is not type(None)), kind)(value)


def loose_settings(arguments: dict[str, Any]) -> dict[str, Any]:
    """Take the readiness settings given one by one (``pattern=``, ...) out of ``arguments``; return them."""
    return {name: arguments.pop(name) for name in get_type_hints(ReadinessSettings) if name in arguments}


def settings_dict(settings: ReadinessSettings | Mapping[str, Any] | None, **overrides: Any) -> dict[str, Any]:
    """
    ``settings`` as a dict, with the ``overrides`` that are not ``None``, their values as given.

    A sensor keeps this dict as a templated field (a template such as ``"{{ params.stability_delay }}"``
    is rendered before :meth:`ReadinessSettings.from_dict` reads it).
    """
    base = settings.serialize() if isinstance(settings, ReadinessSettings) else dict(settings or {})
    return {**base, **{name: value for name, value in overrides.items() if value is not None}}


#: The default readiness settings.
DEFAULT_SETTINGS = ReadinessSettings()


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` looks like a file an uploader is still writing (``*.part``, ``~*``, ...)."""
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in TEMPORARY_NAME_PATTERNS)


def matches_pattern(name: str, pattern: str) -> bool:
    """Case-insensitive glob match (``*.pdf`` matches ``A.PDF``)."""
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def is_walked_folder(name: str) -> bool:
    """Whether a recursive listing descends into a subfolder ``name``: no dot-folder or temporary name."""
    return not name.startswith(".") and not is_temporary_name(name)


def add_entries(
    listing: dict[str, FileState], folder: str, entries: Iterable[tuple[str, FileState, bool]], depth: int
) -> list[str]:
    """
    Add one listed folder's entries to a recursive ``listing``; return the subfolders to list next.

    Only real folders are descended into (``is_folder`` from the entry's own attributes, never a
    symbolic link's target: no loops), no dot-folder or temporary name, and not below :data:`MAX_DEPTH`.

    :param listing: the listing so far (relative path -> state), added to
    :param folder: the listed folder, relative to the top one (``""`` for the top one)
    :param entries: its entries (name, state, is_folder)
    :param depth: how deep ``folder`` lies below the top one (0 for the top one)
    """
    subfolders = []
    for name, state, is_folder in entries:
        path = posixpath.join(folder, name)
        listing[path] = state
        if is_folder and depth < MAX_DEPTH and is_walked_folder(name):
            subfolders.append(path)
    return subfolders


def is_candidate(name: str, state: FileState, settings: ReadinessSettings = DEFAULT_SETTINGS) -> bool:
    """Whether an entry (by its path in the listing) could be ready at all, whatever its history."""
    base = posixpath.basename(name)
    return (
        state.is_regular
        and not base.startswith(".")
        and not is_temporary_name(base)
        and settings.matches(base)
        and not (settings.done_marker and base.endswith(settings.done_marker))
        and state.size >= settings.min_size
    )


def is_right_age(state: FileState, settings: ReadinessSettings, now: float) -> bool:
    """Whether a file is at least ``min_age`` and at most ``max_age`` seconds past its last modification."""
    age = now - state.mtime
    return age >= settings.min_age and (settings.max_age is None or age <= settings.max_age)


def has_marker(name: str, state: FileState, listing: Listing, done_marker: str) -> bool:
    """Whether ``listing`` holds the file's done marker, at least as new as the file (else it is stale)."""
    marker = listing.get(name + done_marker)
    return marker is not None and marker.mtime >= state.mtime


def marker_of(path: str, settings: ReadinessSettings) -> str | None:
    """The path of a file's done marker, ``None`` when the settings ask for none."""
    return None if settings.done_marker is None else path + settings.done_marker


def too_big(files: Sequence[FileT], max_size: int | None) -> tuple[list[FileT], list[FileT]]:
    """
    ``files`` split, in order, into those to send and those larger than ``max_size`` (set aside unsent).

    A file without a recorded ``size`` (claimed by 0.3) is sent, as before.

    :param files: claimed files (dicts with ``size``)
    :param max_size: largest size in bytes to send; ``None``: no limit
    """
    fits: list[FileT] = []
    larger: list[FileT] = []
    for file in files:
        size = file.get("size")
        (larger if max_size is not None and size is not None and size > max_size else fits).append(file)
    return fits, larger


def too_old(listing: Listing, settings: ReadinessSettings, now: float) -> list[str]:
    """
    The candidates of ``listing`` older than ``max_age``, by name: left alone, reported in the status.

    :param listing: the directory's listing
    :param settings: the readiness settings
    :param now: the current time (epoch seconds)
    """
    if settings.max_age is None:
        return []
    return [
        name
        for name in sorted(listing)
        if is_candidate(name, listing[name], settings) and now - listing[name].mtime > settings.max_age
    ]


def is_stable(before: FileState, after: FileState) -> bool:
    """Whether a file kept its size and modification time between two looks."""
    return before.size == after.size and before.mtime == after.mtime


def unannounced(
    listing: Listing, announced: Listing, settings: ReadinessSettings = DEFAULT_SETTINGS
) -> list[str]:
    """
    The candidates of ``listing`` not in ``announced`` as they are now (new, or changed since), by name.

    :param listing: the directory's current listing
    :param announced: files found stable earlier, e.g. by a watcher (name -> state)
    :param settings: the readiness settings
    """
    return [
        name
        for name in sorted(listing)
        if is_candidate(name, listing[name], settings)
        and not (name in announced and is_stable(announced[name], listing[name]))
    ]


def ready_files(
    directory: str,
    before: Listing,
    after: Listing,
    *,
    now: float,
    settings: ReadinessSettings = DEFAULT_SETTINGS,
) -> list[RemoteFile]:
    """
    Files of ``after`` that are ready, sorted by name.

    :param directory: the listed directory, joined to each name to form ``RemoteFile.path``
    :param before: the earlier listing (name -> state)
    :param after: the later listing, at least the stability delay after ``before``
    :param now: the current time (epoch seconds), for ``min_age``
    :param settings: the readiness settings (its ``stability_delay`` is the caller's to keep)
    """
    ready = []
    for name in sorted(after):
        state = after[name]
        previous = before.get(name)
        if previous is None or not is_stable(previous, state):
            continue
        if not is_candidate(name, state, settings) or not is_right_age(state, settings, now):
            continue
        if settings.done_marker is not None and not has_marker(name, state, after, settings.done_marker):
            continue
        ready.append(RemoteFile(path=posixpath.join(directory, name), size=state.size, mtime=state.mtime))
    return ready


def waiting_files(
    previous: Listing | None, listing: Listing, settings: ReadinessSettings = DEFAULT_SETTINGS
) -> tuple[list[str], list[str]]:
    """
    The candidates of ``listing`` that are not passed on yet, by name: those still growing, the others.

    A candidate (see :func:`is_candidate`) is still growing when it is new or changed since ``previous``
    (every one is when there is no ``previous``); the others wait to be stable long or old enough.

    :param previous: the listing before ``listing``, if any
    :param listing: the latest listing
    :param settings: the readiness settings
    """
    growing: list[str] = []
    settling: list[str] = []
    for name in sorted(listing):
        state = listing[name]
        if not is_candidate(name, state, settings):
            continue
        before = previous.get(name) if previous is not None else None
        (settling if before is not None and is_stable(before, state) else growing).append(name)
    return growing, settling


class StabilityTracker:
    """
    Decide readiness over a series of listings of one directory, as a polling trigger takes them.

    It keeps the last listing that may serve as the earlier look (a baseline), so a file unchanged
    across two polls at least ``stability_delay`` apart is ready without an extra wait.

    :param directory: the listed directory
    :param settings: the readiness settings
    """

    def __init__(self, directory: str, settings: ReadinessSettings) -> None:
        self.directory = directory
        self.settings = settings
        self._baseline: Listing | None = None
        self._baseline_at = 0.0

    def observe(
        self, listing: Listing, started: float, finished: float, now: float
    ) -> list[RemoteFile] | None:
        """
        The ready files of ``listing``; ``None`` when it came too soon after the baseline to tell.

        :param listing: the new listing
        :param started: monotonic time the listing was requested
        :param finished: monotonic time it was received (a later listing may compare with it from then)
        :param now: the current time (epoch seconds), for ``min_age``
        """
        if self._baseline is not None and started - self._baseline_at < self.settings.stability_delay:
            return None
        ready: list[RemoteFile] = []
        if self._baseline is not None:
            ready = ready_files(self.directory, self._baseline, listing, now=now, settings=self.settings)
        self._baseline, self._baseline_at = listing, finished
        return ready
