"""
Claim ready files into the dated in-progress folder: atomic renames, exactly once, crash-safe, file by file.

A claim runs in three phases, each of which a retry (same manifest id) can resume:

1. **Stage.** The manifest ``<dir>/.claims/<id>.json`` (the intended files, with the size and
   mtime they were found ready with) is written first. Each source is then renamed into the
   claim's own staging folder ``<dir>/.claims/<id>/`` under a short name (index and extension).
   The rename is the lock: when two claims race for a file, exactly one rename succeeds and the
   other finds the source gone and skips it. A staged file whose size or mtime changed since it was
   found ready goes back to its source folder; a file the server refuses to move stays there.
2. **Place.** The final names are chosen (a name already taken gets `` (1)``, `` (2)``, ...,
   shortened to fit the server's 255-byte limit) and written once, with the skipped files and
   their reasons, to ``<dir>/.claims/<id>.placed.json``.
3. **Move.** Each staged file is renamed to its final name; if another claim took that name in the
   meantime, to a name unique to this claim; if the server refuses both, back to its source folder
   (recorded first in ``<dir>/.claims/<id>.returned.<index>.json``). Nothing is overwritten or copied:
   on a server whose rename replaces an existing file (rclone, the Go ``pkg/sftp`` family), phases
   2 and 3 hold the folder's lock and rename only onto names a listing shows free
   (:mod:`~airflow_outamation.claims.renames`).

At every instant a file is in the input folder or under ``<dir>`` (staging included), and none is
left in staging when a claim returns. Renames of one phase are pipelined (many requests in flight),
so 1,000 files do not cost 1,000 round trips.

Each claimed file has an identity, its claim's id and its index in the manifest
(:class:`ClaimedFile` ``manifest_id``, ``index``). Once the document API accepted a batch, a receipt
``<dir>/.claims/sent/<message_id>.json`` lists its files by that identity (with path, size and
mtime); :func:`claim_status` tells a claim's sent files from its unsent ones.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import paramiko
from paramiko.sftp import SFTP_NO_SUCH_FILE, SFTP_OK

from airflow_outamation.batching import name_list
from airflow_outamation.claims import renames
from airflow_outamation.claims.names import (
    DEFAULT_NAME_ENCODING,
    differences,
    own_name,
    split_extension,
    unique_name,
    utf8_name,
)
from airflow_outamation.claims.records import (
    RECORD_VERSION,
    claims_folder,
    listdir,
    manifest_path,
    placed_path,
    read_json,
    read_json_many,
    status_text,
    write_json_once,
)
from airflow_outamation.exceptions import SFTPClaimError
from airflow_outamation.name_text import path_of, printable
from airflow_outamation.readiness import RemoteFile
from airflow_outamation.sftp_paths import exists, makedirs

#: Skipped files named in one log line; the rest are counted.
LOGGED_SKIPS = 20


@dataclass(frozen=True)
class ClaimedFile:
    """
    A file moved into the in-progress folder: where it is now, its ``size`` and ``mtime`` as claimed.

    Its identity is ``(manifest_id, index)``: the claim's id and the file's place in the claim's
    manifest. The ledger finds every record of the file by it, never by its path. ``index`` is
    ``None`` for a claim made by 0.3, whose records know its files by path, size and mtime.
    """

    filename: str
    source_path: str
    backup_path: str
    size: int | None = None
    mtime: float | None = None
    claim_dir: str | None = None
    manifest_id: str | None = None
    index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SkippedFile:
    """A file a claim did not take, and why (it is in the input folder, or another run took it)."""

    path: str
    reason: str


@dataclass(frozen=True)
class Claim:
    """What one claim took and what it left, each skipped file with its reason."""

    claimed: list[ClaimedFile]
    skipped: list[SkippedFile]


def describe_skipped(skipped: Sequence[SkippedFile], limit: int = LOGGED_SKIPS) -> str:
    """One line naming the first ``limit`` skipped files with their reasons, and how many more there are."""
    shown = "; ".join(printable(f"{item.path}: {item.reason}") for item in skipped[:limit])
    more = len(skipped) - limit
    return f"{shown}; and {more} more" if more > 0 else shown


def intended_files(files: Iterable[RemoteFile | Mapping[str, Any] | str]) -> list[dict[str, Any]]:
    """
    The distinct files to claim, sorted by path, as ``{"path", "size", "mtime"}``.

    ``size`` and ``mtime`` are what the caller found ready (``None`` when it gave plain paths).
    """
    by_path: dict[str, dict[str, Any]] = {}
    for item in files:
        if isinstance(item, RemoteFile):
            by_path[item.path] = {"path": item.path, "size": item.size, "mtime": item.mtime}
        elif isinstance(item, Mapping):
            path = path_of(item, "path" if item.get("path") else "source_path")
            by_path[path] = {"path": path, "size": item.get("size"), "mtime": item.get("mtime")}
        else:
            by_path[str(item)] = {"path": str(item), "size": None, "mtime": None}
    return [by_path[path] for path in sorted(by_path)]


def _load_manifest(manifest: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """A manifest's intended files and their staging names: index and extension (old ones: base name)."""
    if "files" in manifest:
        wanted = list(manifest["files"])
        return wanted, [f"{index:05d}{split_extension(item['path'])[1]}" for index, item in enumerate(wanted)]
    wanted = [{"path": path, "size": None, "mtime": None} for path in manifest["sources"]]
    return wanted, [f"{index:05d}__{posixpath.basename(item['path'])}" for index, item in enumerate(wanted)]


def load_placements(placed: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], list[SkippedFile]]:
    """The placements (staging name -> final name, size, mtime) and skipped files of a placed record."""
    if "files" in placed:
        return dict(placed["files"]), [SkippedFile(**item) for item in placed["skipped"]]
    return {name: {"name": final, "size": None, "mtime": None} for name, final in placed.items()}, []


def claim(
    sftp: paramiko.SFTPClient,
    files: Iterable[RemoteFile | Mapping[str, Any] | str],
    in_progress_dir: str,
    manifest_id: str,
    name_encoding: str = DEFAULT_NAME_ENCODING,
) -> Claim:
    """
    Move ``files`` into ``in_progress_dir`` exactly once, file by file; a repeat with ``manifest_id`` resumes.

    A repeated call returns the same claim as the first (``files`` is then ignored: the manifest is
    the record). A file is skipped, with its reason, when it is gone (claimed by another run), when
    the server refuses to move it (it stays in its source folder), or when its size or mtime differ
    from the ones given in ``files`` (it goes back to its source folder). No file stays in the
    staging folder once this returns.

    :param sftp: an open SFTP client, used by this call alone
    :param files: the files to claim (``RemoteFile``, XCom dicts with ``path``, ``size``, ``mtime``, or paths)
    :param in_progress_dir: the dated in-progress directory; created when missing
    :param manifest_id: names this claim's manifest, e.g. :func:`manifest_id_for` of the DAG run
    :param name_encoding: decodes a name that is not UTF-8 into its name in ``in_progress_dir``
        (:func:`~airflow_outamation.claims.names.utf8_name`); the manifest keeps the original
    :raises SFTPClaimError: the server refused a directory or a record of the claim (permission denied, ...)
    """
    return _claim(sftp, files, in_progress_dir, manifest_id, name_encoding, finished_only=False)


def _claim(
    sftp: paramiko.SFTPClient,
    files: Iterable[RemoteFile | Mapping[str, Any] | str],
    in_progress_dir: str,
    manifest_id: str,
    name_encoding: str,
    finished_only: bool,
) -> Claim:
    """
    :func:`claim`; with ``finished_only``, only read back a claim that has both its records.

    A finished claim (both records there, its staging folder gone) is read without the folder's
    lock and without renaming: its records, the claims folder and the in-progress folder, listed.
    """
    claims_dir = claims_folder(in_progress_dir)
    staging_dir = posixpath.join(claims_dir, manifest_id)
    records = (manifest_path(in_progress_dir, manifest_id), placed_path(in_progress_dir, manifest_id))
    try:
        makedirs(sftp, claims_dir)
        manifest, placed = read_json_many(sftp, records).values()
        if finished_only and (manifest is None or placed is None):
            missing = records[0] if manifest is None else records[1]
            raise SFTPClaimError(f"claim {manifest_id} has no record {missing}: it never finished")
        if manifest is None:
            manifest = write_json_once(
                sftp,
                records[0],
                {"version": RECORD_VERSION, "manifest_id": manifest_id, "files": intended_files(files)},
            )
        wanted, staged_names = _load_manifest(manifest)
        in_claims_dir = listdir(sftp, claims_dir) if placed is not None else set()
        finished = placed is not None and manifest_id not in in_claims_dir  # its staging folder is gone
        # Where renames replace, renames hold the folder's lock; a finished claim renames nothing.
        with (
            contextlib.nullcontext()
            if finished
            else renames.folder_lock(sftp, in_progress_dir, manifest_id, resume=True)
        ):
            if not finished:
                placed = read_json(sftp, records[1])  # again: a claim of this id may have placed it meanwhile
                if placed is None:
                    placed = write_json_once(
                        sftp,
                        records[1],
                        {
                            "version": RECORD_VERSION,
                            **_stage_and_place(
                                sftp, wanted, staged_names, staging_dir, in_progress_dir, name_encoding
                            ),
                        },
                    )
                in_claims_dir = listdir(sftp, claims_dir)
            placements, skipped_before = load_placements(placed)
            claimed, returned = _move(
                sftp,
                wanted,
                staged_names,
                placements,
                in_claims_dir,
                claims_dir,
                in_progress_dir,
                manifest_id,
            )
        claimed = [_as_uploaded(file, name_encoding) for file in claimed]
        if not finished:
            _remove_staging_dir(sftp, staging_dir)
        if "version" not in manifest:  # claimed by 0.3: its files keep 0.3's identity, hence their batch ids
            claimed = [replace(item, index=None) for item in claimed]
    except SFTPClaimError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        failure = printable(f"{type(exc).__name__}: {exc}")
        raise SFTPClaimError(f"claiming into {in_progress_dir} failed: {failure}") from exc
    return Claim(claimed=claimed, skipped=sorted([*skipped_before, *returned], key=lambda item: item.path))


def claim_files(
    sftp: paramiko.SFTPClient,
    files: Iterable[RemoteFile | Mapping[str, Any] | str],
    in_progress_dir: str,
    manifest_id: str,
    name_encoding: str = DEFAULT_NAME_ENCODING,
) -> list[ClaimedFile]:
    """The files :func:`claim` moved into ``in_progress_dir`` (same arguments)."""
    return claim(sftp, files, in_progress_dir, manifest_id, name_encoding).claimed


def claimed_files(
    sftp: paramiko.SFTPClient,
    in_progress_dir: str,
    manifest_id: str,
    name_encoding: str = DEFAULT_NAME_ENCODING,
) -> list[ClaimedFile]:
    """
    The files claim ``manifest_id`` took, read back from its records: what the claim returned.

    This is how the tasks after a claim learn its files (the claim's XCom holds only a summary). It
    resumes the finished claim as a retry of it would (moving nothing), so the files come back with
    the same identity, paths and names as the claim gave them.

    :param in_progress_dir: the dated in-progress directory the claim went into
    :param manifest_id: the claim's id
    :param name_encoding: the claim's ``name_encoding``
    :raises SFTPClaimError: the claim has no finished record there (never made, or cut short)
    """
    return _claim(sftp, [], in_progress_dir, manifest_id, name_encoding, finished_only=True).claimed


def _as_uploaded(file: ClaimedFile, name_encoding: str) -> ClaimedFile:
    """
    ``file`` with the name it came by in UTF-8 (:func:`utf8_name`), as the API payload and logs take it.

    The manifest keeps the name as the server had it; the claim's result never holds undecodable bytes.
    """
    folder, name = posixpath.split(file.source_path)
    return replace(file, source_path=posixpath.join(folder, utf8_name(name, name_encoding)))


def _stage_and_place(
    sftp: paramiko.SFTPClient,
    wanted: list[dict[str, Any]],
    staged_names: list[str],
    staging_dir: str,
    in_progress_dir: str,
    name_encoding: str,
) -> dict[str, Any]:
    """Phases 1 and 2: stage, put back the changed files, choose final names; return the placed record."""
    try:  # the claims folder exists: one round trip, and a folder made now is known empty
        sftp.mkdir(staging_dir)
        already: set[str] = set()
    except OSError:
        already = listdir(sftp, staging_dir)  # an interrupted try of this claim staged these
        if not already and not exists(sftp, staging_dir):
            raise
    skipped = _stage(sftp, wanted, staged_names, staging_dir, already)
    kept, changed = _check(sftp, wanted, staged_names, staging_dir)
    skipped.update(changed)
    return {
        "files": _place(sftp, wanted, staged_names, kept, in_progress_dir, name_encoding),
        "skipped": [{"path": path, "reason": skipped[path]} for path in sorted(skipped)],
    }


def _remove_staging_dir(sftp: paramiko.SFTPClient, staging_dir: str) -> None:
    """Remove the (empty) staging folder; one that still holds files is an error naming them."""
    try:
        sftp.rmdir(staging_dir)
    except FileNotFoundError:
        return
    except OSError:  # not empty (or refused): say which files are left, if any
        left = sorted(listdir(sftp, staging_dir))
        if left:
            raise SFTPClaimError(
                f"{len(left)} file(s) are still in {staging_dir} ({name_list(left, 5)}); "
                "a retry of the claim moves them"
            ) from None
        raise


def _stage(
    sftp: paramiko.SFTPClient,
    wanted: list[dict[str, Any]],
    staged_names: list[str],
    staging_dir: str,
    already: set[str],
) -> dict[str, str]:
    """Phase 1: rename every source still present and not ``already`` staged; return the others' reasons."""
    moves = [
        (item["path"], posixpath.join(staging_dir, staged))
        for item, staged in zip(wanted, staged_names, strict=True)
        if staged not in already
    ]
    skipped = {}
    for (source, _), status in zip(moves, renames.pipelined_renames(sftp, moves), strict=True):
        if status == SFTP_NO_SUCH_FILE:
            skipped[source] = "it is no longer in the input folder (claimed by another run, or removed)"
        elif status != SFTP_OK:
            skipped[source] = f"the server refused to move it into {staging_dir} ({status_text(status)})"
    return skipped


def _check(
    sftp: paramiko.SFTPClient, wanted: list[dict[str, Any]], staged_names: list[str], staging_dir: str
) -> tuple[dict[str, paramiko.SFTPAttributes], dict[str, str]]:
    """Stat the staged files; put back those that changed since they were found ready (source -> reason)."""
    attributes = {entry.filename: entry for entry in sftp.listdir_attr(staging_dir)}
    kept, changed = {}, {}
    for item, staged in zip(wanted, staged_names, strict=True):
        entry = attributes.get(staged)
        if entry is None:
            continue
        change = differences(item["size"], item["mtime"], entry.st_size, entry.st_mtime)
        if not change:
            kept[staged] = entry
            continue
        where = _return_to_source(sftp, posixpath.join(staging_dir, staged), item["path"])
        as_name = "" if where == item["path"] else f" as {posixpath.basename(where)}"
        changed[item["path"]] = (
            f"it changed since it was found ready ({', '.join(change)}); left in the input folder{as_name}"
        )
    return kept, changed


def _return_to_source(sftp: paramiko.SFTPClient, staged_path: str, source: str) -> str:
    """Rename a staged file back to ``source``, or to a free `` (n)`` name beside it; return where it went."""
    directory, name = posixpath.split(source)
    target = posixpath.join(directory, unique_name(name, listdir(sftp, directory)))
    try:
        sftp.rename(staged_path, target)
    except OSError as exc:
        raise SFTPClaimError(
            printable(f"putting {staged_path} back as {target} failed: {type(exc).__name__}: {exc}; ")
            + "the file stays there and a retry of the claim puts it back"
        ) from exc
    return target


def _place(
    sftp: paramiko.SFTPClient,
    wanted: list[dict[str, Any]],
    staged_names: list[str],
    kept: Mapping[str, paramiko.SFTPAttributes],
    in_progress_dir: str,
    name_encoding: str,
) -> dict[str, dict[str, Any]]:
    """
    Phase 2: choose a free final name for every staged file (staging name -> final name, size, mtime).

    A final name is valid UTF-8 (a name that is not gets decoded with ``name_encoding``), so the
    API payload, receipts and records downstream never carry undecodable bytes.
    """
    taken = listdir(sftp, in_progress_dir)
    placements = {}
    for item, staged in zip(wanted, staged_names, strict=True):
        if staged in kept:
            final = unique_name(utf8_name(posixpath.basename(item["path"]), name_encoding), taken)
            taken.add(final)
            placements[staged] = {"name": final, "size": kept[staged].st_size, "mtime": kept[staged].st_mtime}
    return placements


def _move(
    sftp: paramiko.SFTPClient,
    wanted: list[dict[str, Any]],
    staged_names: list[str],
    placements: Mapping[str, Mapping[str, Any]],
    in_claims_dir: set[str],
    claims_dir: str,
    in_progress_dir: str,
    manifest_id: str,
) -> tuple[list[ClaimedFile], list[SkippedFile]]:
    """
    Phase 3: rename staged files to their final names (a name taken meanwhile: this claim's own).

    A file the server refuses under both names goes back to its source folder; a record of that
    (``<id>.returned.<index>.json``) is written first, so a resumed claim knows it was not claimed.

    :param in_claims_dir: the names in ``claims_dir`` (the returned records, the staging folder)
    """
    staging_dir = posixpath.join(claims_dir, manifest_id)
    sources = {staged: item["path"] for item, staged in zip(wanted, staged_names, strict=True)}
    markers = {
        staged: posixpath.join(claims_dir, f"{manifest_id}.returned.{index:05d}.json")
        for index, staged in enumerate(staged_names)
    }
    returned = {
        staged: read_json(sftp, marker)["reason"]
        for staged, marker in markers.items()
        if posixpath.basename(marker) in in_claims_dir
    }
    still_staged = listdir(sftp, staging_dir) if manifest_id in in_claims_dir else set()
    targets = {staged: posixpath.join(in_progress_dir, entry["name"]) for staged, entry in placements.items()}
    own = {
        staged: posixpath.join(in_progress_dir, own_name(entry["name"], manifest_id))
        for staged, entry in placements.items()
    }
    pending = [staged for staged in placements if staged in still_staged and staged not in returned]
    taken_meanwhile = _rename_into(sftp, staging_dir, pending, targets)
    refused = _rename_into(sftp, staging_dir, list(taken_meanwhile), own)
    targets.update({staged: own[staged] for staged in taken_meanwhile if staged not in refused})
    for staged, status in refused.items():
        reason = f"the server refused to move it into {in_progress_dir} ({status_text(status)})"
        record = {"reason": f"{reason}; returned to the input folder"}
        returned[staged] = write_json_once(sftp, markers[staged], record)["reason"]
    for staged in returned.keys() & still_staged:
        _return_to_source(sftp, posixpath.join(staging_dir, staged), sources[staged])
    earlier = set(placements) - still_staged - set(returned)  # moved by an interrupted call: name or own
    if earlier:
        present = listdir(sftp, in_progress_dir)
        targets.update(
            {staged: own[staged] for staged in earlier if posixpath.basename(own[staged]) in present}
        )
    claimed = [
        ClaimedFile(
            filename=posixpath.basename(targets[staged]),
            source_path=sources[staged],
            backup_path=targets[staged],
            size=placements[staged]["size"],
            mtime=placements[staged]["mtime"],
            claim_dir=in_progress_dir,
            manifest_id=manifest_id,
            index=index,
        )
        for index, staged in enumerate(staged_names)
        if staged in placements and staged not in returned
    ]
    return claimed, [SkippedFile(path=sources[staged], reason=reason) for staged, reason in returned.items()]


def _rename_into(
    sftp: paramiko.SFTPClient, staging_dir: str, staged: list[str], targets: Mapping[str, str]
) -> dict[str, int]:
    """Rename the ``staged`` files to their ``targets``; return the refused ones with their SFTP status."""
    statuses = renames.renames_without_replacing(
        sftp,
        [(posixpath.join(staging_dir, name), targets[name]) for name in staged],
        posixpath.dirname(staging_dir),
    )
    return {name: status for name, status in zip(staged, statuses, strict=True) if status != SFTP_OK}
