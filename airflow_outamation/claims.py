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
   (recorded first in ``<dir>/.claims/<id>.returned.<index>.json``). Nothing is overwritten or copied.

At every instant a file is in the input folder or under ``<dir>`` (staging included), and none is
left in staging when a claim returns. Renames of one phase are pipelined (many requests in flight),
so 1,000 files do not cost 1,000 round trips.

Once the document API accepted a batch, a receipt ``<dir>/.claims/sent/<message_id>.json`` lists
its files with their size and mtime; :func:`claim_status` tells a claim's sent files from its
unsent ones.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import re
import stat
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import paramiko
from paramiko.message import Message
from paramiko.sftp import CMD_RENAME, CMD_STATUS, SFTP_DESC, SFTP_NO_SUCH_FILE, SFTP_OK

from airflow_outamation.exceptions import SFTPClaimError
from airflow_outamation.readiness import RemoteFile
from airflow_outamation.sftp_paths import makedirs

CLAIMS_DIR = ".claims"
#: Receipts of batches the API accepted, under ``<dir>/.claims/``.
SENT_DIR = "sent"
#: Records of batches as first sent (files, payload fields), under ``<dir>/.claims/``.
BATCHES_DIR = "batches"
#: Records of batches moved to the rejected folder, under ``<dir>/.claims/``.
REJECTED_DIR = "rejected"
#: Records of accepted batches moved or deleted after their receipt, under ``<dir>/.claims/``.
COMPLETED_DIR = "completed"
#: One record per failed send of a batch, under ``<dir>/.claims/``.
ATTEMPTS_DIR = "attempts"
#: A move or delete planned but not known to be finished: ``<kind>/<message_id>.json.plan``.
PLAN_SUFFIX = ".plan"
#: SFTP requests kept in flight while renaming.
PIPELINE_DEPTH = 64
#: The longest file name, in bytes, the servers take (Linux ``NAME_MAX``).
NAME_MAX = 255
#: A longer "extension" is part of the stem when a name is shortened (``a.<200 bytes>``).
_EXT_MAX = 32
#: Characters of the readable part of a manifest id.
_MANIFEST_PREFIX_MAX = 100
#: A claim's manifest (not its placement, purge or returned-file records, nor a temporary file).
_MANIFEST_NAME = re.compile(r"(?!.*\.(?:purging|returned\.\d+)\.json$)[^/]+\.json")
#: Skipped files named in one log line; the rest are counted.
LOGGED_SKIPS = 20


@dataclass(frozen=True)
class ClaimedFile:
    """A file moved into the in-progress folder: where it is now, its ``size`` and ``mtime`` as claimed."""

    filename: str
    source_path: str
    backup_path: str
    size: int | None = None
    mtime: float | None = None
    claim_dir: str | None = None
    manifest_id: str | None = None

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


def claims_folder(claim_dir: str) -> str:
    """``<claim_dir>/.claims``: the records of every claim into ``claim_dir``."""
    return posixpath.join(claim_dir, CLAIMS_DIR)


def manifest_path(claim_dir: str, manifest_id: str) -> str:
    """The manifest of claim ``manifest_id``: ``<claim_dir>/.claims/<manifest_id>.json``."""
    return posixpath.join(claims_folder(claim_dir), f"{manifest_id}.json")


def placed_path(claim_dir: str, manifest_id: str) -> str:
    """The placement record of claim ``manifest_id``: ``<claim_dir>/.claims/<manifest_id>.placed.json``."""
    return posixpath.join(claims_folder(claim_dir), f"{manifest_id}.placed.json")


def record_dir(claim_dir: str, kind: str) -> str:
    """The folder of one kind of batch record (``SENT_DIR``, ``BATCHES_DIR``, ...) of ``claim_dir``."""
    return posixpath.join(claims_folder(claim_dir), kind)


def record_path(claim_dir: str, kind: str, message_id: str) -> str:
    """``<claim_dir>/.claims/<kind>/<message_id>.json``: one batch's record of one kind."""
    return posixpath.join(record_dir(claim_dir, kind), f"{message_id}.json")


def sibling_dir(claim_dir: str, folder: str) -> str:
    """``<base>/<folder>/<date>`` for the claim folder ``<base>/<in_progress>/<date>``."""
    in_progress, date = posixpath.split(claim_dir.rstrip("/"))
    return posixpath.join(posixpath.dirname(in_progress), folder, date)


def claim_dir_of(item: Mapping[str, Any]) -> str:
    """The claim folder of a claimed file (XCom dict): ``claim_dir``, else the folder of ``backup_path``."""
    return str(item.get("claim_dir") or posixpath.dirname(str(item["backup_path"])))


def manifest_id_for(dag_id: str, run_id: str) -> str:
    """
    The claim id of one DAG run: a readable, file-name-safe prefix plus a digest of the exact ids.

    Distinct (dag id, run id) pairs get distinct ids (``run:1``, ``run_1`` and ``run/1`` included)
    and every id is short enough for the claim's file names, whatever the length of the run id.
    """
    dag = dag_id.encode()
    digest = hashlib.sha256(len(dag).to_bytes(8, "big") + dag + run_id.encode()).hexdigest()[:20]
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", f"{dag_id}__{run_id}")[:_MANIFEST_PREFIX_MAX]
    return f"{readable}__{digest}"


def _split_extension(name: str) -> tuple[str, str]:
    """``(stem, ext)``; an "extension" longer than ``_EXT_MAX`` bytes is part of the stem."""
    stem, ext = posixpath.splitext(name)
    return (stem, ext) if len(ext.encode()) <= _EXT_MAX else (name, "")


def with_suffix(name: str, suffix: str) -> str:
    """``stem{suffix}.ext``, the stem cut on a UTF-8 character boundary to stay within ``NAME_MAX`` bytes."""
    stem, ext = _split_extension(name)
    budget = max(NAME_MAX - len(f"{suffix}{ext}".encode()), 0)
    return f"{stem.encode()[:budget].decode('utf-8', 'ignore')}{suffix}{ext}"


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``stem (n).ext`` with the smallest ``n`` not in ``taken`` (within ``NAME_MAX`` bytes)."""
    n = 0
    candidate = name
    while candidate in taken:
        n += 1
        candidate = with_suffix(name, f" ({n})")
    return candidate


def _own_name(name: str, manifest_id: str) -> str:
    """A name no other claim can choose: the stem carries a digest of this claim's id."""
    token = hashlib.sha256(manifest_id.encode()).hexdigest()[:8]
    return with_suffix(name, f" (claim {token})")


def differences(expected_size: Any, expected_mtime: Any, size: Any, mtime: Any) -> list[str]:
    """How a size and mtime differ from the expected ones (whole seconds; unknown values not compared)."""
    changes = []
    if None not in (expected_size, size) and int(expected_size) != int(size):
        changes.append(f"size {int(expected_size)} -> {int(size)}")
    if None not in (expected_mtime, mtime) and int(float(expected_mtime)) != int(float(mtime)):
        changes.append(f"mtime {int(float(expected_mtime))} -> {int(float(mtime))}")
    return changes


def describe_skipped(skipped: Sequence[SkippedFile], limit: int = LOGGED_SKIPS) -> str:
    """One line naming the first ``limit`` skipped files with their reasons, and how many more there are."""
    shown = "; ".join(f"{item.path}: {item.reason}" for item in skipped[:limit])
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
            path = str(item.get("path") or item["source_path"])
            by_path[path] = {"path": path, "size": item.get("size"), "mtime": item.get("mtime")}
        else:
            by_path[str(item)] = {"path": str(item), "size": None, "mtime": None}
    return [by_path[path] for path in sorted(by_path)]


class _Responses:
    """Collects the answers to pipelined requests (paramiko hands them to ``_async_response``)."""

    def __init__(self) -> None:
        self.status: dict[int, int] = {}

    def _async_response(self, t: int, msg: Message, num: int) -> None:
        self.status[num] = msg.get_int() if t == CMD_STATUS else -1


def pipelined_renames(sftp: paramiko.SFTPClient, moves: Sequence[tuple[str, str]]) -> list[int]:
    """
    Rename many paths with up to ``PIPELINE_DEPTH`` requests in flight; return each SFTP status code.

    Plain SFTP rename: it fails (it does not overwrite) when the target exists. Uses paramiko's
    request pipelining, the mechanism its own prefetching reads are built on.
    """
    responses = _Responses()
    numbers: list[int] = []
    for old, new in moves:
        while len(numbers) - len(responses.status) >= PIPELINE_DEPTH:
            sftp._read_response()  # type: ignore[attr-defined]
        numbers.append(
            sftp._async_request(responses, CMD_RENAME, sftp._adjust_cwd(old), sftp._adjust_cwd(new))  # type: ignore[attr-defined]
        )
    while len(responses.status) < len(numbers):
        sftp._read_response()  # type: ignore[attr-defined]
    return [responses.status[number] for number in numbers]


def _read_json(sftp: paramiko.SFTPClient, path: str) -> Any:
    try:
        with sftp.open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None


def _write_json_once(sftp: paramiko.SFTPClient, path: str, content: Any) -> Any:
    """Write ``content`` atomically (temp name, then rename); return what ``path`` holds if it exists."""
    temporary = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    with sftp.open(temporary, "wb") as handle:
        handle.write(json.dumps(content, indent=1, ensure_ascii=False).encode())
    try:
        sftp.rename(temporary, path)
    except OSError:
        sftp.remove(temporary)
        existing = _read_json(sftp, path)
        if existing is None:
            raise
        return existing
    return content


def _listdir(sftp: paramiko.SFTPClient, path: str) -> set[str]:
    try:
        return set(sftp.listdir(path))
    except FileNotFoundError:
        return set()


def _status_text(status: int) -> str:
    """``SFTP status 3: Permission denied``."""
    text = SFTP_DESC[status] if 0 <= status < len(SFTP_DESC) else "unknown"
    return f"SFTP status {status}: {text}"


def _load_manifest(manifest: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """A manifest's intended files and their staging names: index and extension (old ones: base name)."""
    if "files" in manifest:
        wanted = list(manifest["files"])
        return wanted, [
            f"{index:05d}{_split_extension(item['path'])[1]}" for index, item in enumerate(wanted)
        ]
    wanted = [{"path": path, "size": None, "mtime": None} for path in manifest["sources"]]
    return wanted, [f"{index:05d}__{posixpath.basename(item['path'])}" for index, item in enumerate(wanted)]


def _load_placements(placed: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], list[SkippedFile]]:
    """The placements (staging name -> final name, size, mtime) and skipped files of a placed record."""
    if "files" in placed:
        return dict(placed["files"]), [SkippedFile(**item) for item in placed["skipped"]]
    return {name: {"name": final, "size": None, "mtime": None} for name, final in placed.items()}, []


def claim(
    sftp: paramiko.SFTPClient,
    files: Iterable[RemoteFile | Mapping[str, Any] | str],
    in_progress_dir: str,
    manifest_id: str,
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
    :raises SFTPClaimError: the server refused a directory or a record of the claim (permission denied, ...)
    """
    claims_dir = claims_folder(in_progress_dir)
    staging_dir = posixpath.join(claims_dir, manifest_id)
    try:
        makedirs(sftp, claims_dir)
        manifest = _read_json(sftp, manifest_path(in_progress_dir, manifest_id))
        if manifest is None:
            manifest = _write_json_once(
                sftp,
                manifest_path(in_progress_dir, manifest_id),
                {"manifest_id": manifest_id, "files": intended_files(files)},
            )
        wanted, staged_names = _load_manifest(manifest)
        placed = _read_json(sftp, placed_path(in_progress_dir, manifest_id))
        if placed is None:
            placed = _write_json_once(
                sftp,
                placed_path(in_progress_dir, manifest_id),
                _stage_and_place(sftp, wanted, staged_names, staging_dir, in_progress_dir),
            )
        placements, skipped_before = _load_placements(placed)
        claimed, returned = _move(
            sftp, wanted, staged_names, placements, claims_dir, in_progress_dir, manifest_id
        )
        _remove_staging_dir(sftp, staging_dir)
    except SFTPClaimError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise SFTPClaimError(f"claiming into {in_progress_dir} failed: {type(exc).__name__}: {exc}") from exc
    return Claim(claimed=claimed, skipped=sorted([*skipped_before, *returned], key=lambda item: item.path))


def claim_files(
    sftp: paramiko.SFTPClient,
    files: Iterable[RemoteFile | Mapping[str, Any] | str],
    in_progress_dir: str,
    manifest_id: str,
) -> list[ClaimedFile]:
    """The files :func:`claim` moved into ``in_progress_dir`` (same arguments)."""
    return claim(sftp, files, in_progress_dir, manifest_id).claimed


def _stage_and_place(
    sftp: paramiko.SFTPClient,
    wanted: list[dict[str, Any]],
    staged_names: list[str],
    staging_dir: str,
    in_progress_dir: str,
) -> dict[str, Any]:
    """Phases 1 and 2: stage, put back the changed files, choose final names; return the placed record."""
    makedirs(sftp, staging_dir)
    skipped = _stage(sftp, wanted, staged_names, staging_dir)
    kept, changed = _check(sftp, wanted, staged_names, staging_dir)
    skipped.update(changed)
    return {
        "files": _place(sftp, wanted, staged_names, kept, in_progress_dir),
        "skipped": [{"path": path, "reason": skipped[path]} for path in sorted(skipped)],
    }


def _remove_staging_dir(sftp: paramiko.SFTPClient, staging_dir: str) -> None:
    """Remove the (empty) staging folder; one that still holds files is an error naming them."""
    left = sorted(_listdir(sftp, staging_dir))
    if left:
        raise SFTPClaimError(
            f"{len(left)} file(s) are still in {staging_dir} ({', '.join(left[:5])}); "
            "a retry of the claim moves them"
        )
    with contextlib.suppress(FileNotFoundError):
        sftp.rmdir(staging_dir)


def _stage(
    sftp: paramiko.SFTPClient, wanted: list[dict[str, Any]], staged_names: list[str], staging_dir: str
) -> dict[str, str]:
    """Phase 1: rename every source still present into the staging folder; return the others' reasons."""
    already = _listdir(sftp, staging_dir)
    moves = [
        (item["path"], posixpath.join(staging_dir, staged))
        for item, staged in zip(wanted, staged_names, strict=True)
        if staged not in already
    ]
    skipped = {}
    for (source, _), status in zip(moves, pipelined_renames(sftp, moves), strict=True):
        if status == SFTP_NO_SUCH_FILE:
            skipped[source] = "it is no longer in the input folder (claimed by another run, or removed)"
        elif status != SFTP_OK:
            skipped[source] = f"the server refused to move it into {staging_dir} ({_status_text(status)})"
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
    target = posixpath.join(directory, unique_name(name, _listdir(sftp, directory)))
    try:
        sftp.rename(staged_path, target)
    except OSError as exc:
        raise SFTPClaimError(
            f"putting {staged_path} back as {target} failed: {type(exc).__name__}: {exc}; "
            "the file stays there and a retry of the claim puts it back"
        ) from exc
    return target


def _place(
    sftp: paramiko.SFTPClient,
    wanted: list[dict[str, Any]],
    staged_names: list[str],
    kept: Mapping[str, paramiko.SFTPAttributes],
    in_progress_dir: str,
) -> dict[str, dict[str, Any]]:
    """Phase 2: choose a free final name for every staged file (staging name -> final name, size, mtime)."""
    taken = _listdir(sftp, in_progress_dir)
    placements = {}
    for item, staged in zip(wanted, staged_names, strict=True):
        if staged in kept:
            final = unique_name(posixpath.basename(item["path"]), taken)
            taken.add(final)
            placements[staged] = {"name": final, "size": kept[staged].st_size, "mtime": kept[staged].st_mtime}
    return placements


def _move(
    sftp: paramiko.SFTPClient,
    wanted: list[dict[str, Any]],
    staged_names: list[str],
    placements: Mapping[str, Mapping[str, Any]],
    claims_dir: str,
    in_progress_dir: str,
    manifest_id: str,
) -> tuple[list[ClaimedFile], list[SkippedFile]]:
    """
    Phase 3: rename staged files to their final names (a name taken meanwhile: this claim's own).

    A file the server refuses under both names goes back to its source folder; a record of that
    (``<id>.returned.<index>.json``) is written first, so a resumed claim knows it was not claimed.
    """
    staging_dir = posixpath.join(claims_dir, manifest_id)
    sources = {staged: item["path"] for item, staged in zip(wanted, staged_names, strict=True)}
    markers = {
        staged: posixpath.join(claims_dir, f"{manifest_id}.returned.{index:05d}.json")
        for index, staged in enumerate(staged_names)
    }
    in_claims_dir = _listdir(sftp, claims_dir)
    returned = {
        staged: _read_json(sftp, marker)["reason"]
        for staged, marker in markers.items()
        if posixpath.basename(marker) in in_claims_dir
    }
    still_staged = _listdir(sftp, staging_dir)
    targets = {staged: posixpath.join(in_progress_dir, entry["name"]) for staged, entry in placements.items()}
    own = {
        staged: posixpath.join(in_progress_dir, _own_name(entry["name"], manifest_id))
        for staged, entry in placements.items()
    }
    pending = [staged for staged in placements if staged in still_staged and staged not in returned]
    taken_meanwhile = _rename_into(sftp, staging_dir, pending, targets)
    refused = _rename_into(sftp, staging_dir, list(taken_meanwhile), own)
    targets.update({staged: own[staged] for staged in taken_meanwhile if staged not in refused})
    for staged, status in refused.items():
        reason = f"the server refused to move it into {in_progress_dir} ({_status_text(status)})"
        record = {"reason": f"{reason}; returned to the input folder"}
        returned[staged] = _write_json_once(sftp, markers[staged], record)["reason"]
    for staged in returned.keys() & still_staged:
        _return_to_source(sftp, posixpath.join(staging_dir, staged), sources[staged])
    earlier = set(placements) - still_staged - set(returned)  # moved by an interrupted call: name or own
    if earlier:
        present = _listdir(sftp, in_progress_dir)
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
        )
        for staged in staged_names
        if staged in placements and staged not in returned
    ]
    return claimed, [SkippedFile(path=sources[staged], reason=reason) for staged, reason in returned.items()]


def _rename_into(
    sftp: paramiko.SFTPClient, staging_dir: str, staged: list[str], targets: Mapping[str, str]
) -> dict[str, int]:
    """Rename the ``staged`` files to their ``targets``; return the refused ones with their SFTP status."""
    statuses = pipelined_renames(
        sftp, [(posixpath.join(staging_dir, name), targets[name]) for name in staged]
    )
    return {name: status for name, status in zip(staged, statuses, strict=True) if status != SFTP_OK}


def _receipt_entry(sftp: paramiko.SFTPClient, item: Mapping[str, Any] | str) -> dict[str, Any]:
    """``{"path", "size", "mtime"}`` of a sent file: as claimed, or read from the server for a plain path."""
    if isinstance(item, Mapping):
        path, size, mtime = str(item["backup_path"]), item.get("size"), item.get("mtime")
    else:
        path, size, mtime = str(item), None, None
    if size is None or mtime is None:
        try:
            attributes = sftp.stat(path)
        except OSError as exc:
            raise SFTPClaimError(f"reading {path} for a receipt failed: {type(exc).__name__}: {exc}") from exc
        size, mtime = attributes.st_size, attributes.st_mtime
    return {"path": path, "size": size, "mtime": mtime}


def record_sent(
    sftp: paramiko.SFTPClient,
    in_progress_dir: str,
    message_id: str,
    files: Iterable[Mapping[str, Any] | str],
) -> str:
    """
    Write the receipt of a batch the API accepted; return its path. A receipt is written once.

    The receipt lists each file's path, size and mtime, so a later file at the same path is not
    taken for a sent one.

    :param in_progress_dir: the dated in-progress directory holding the batch's files
    :param message_id: the batch's message id
    :param files: the batch's claimed files (dicts with ``backup_path``, ``size``, ``mtime``) or
        their paths (size and mtime are then read from the server)
    """
    sent_dir = record_dir(in_progress_dir, SENT_DIR)
    path = record_path(in_progress_dir, SENT_DIR, message_id)
    entries = sorted((_receipt_entry(sftp, item) for item in files), key=lambda entry: entry["path"])
    try:
        makedirs(sftp, sent_dir)
        _write_json_once(sftp, path, {"message_id": message_id, "files": entries})
    except OSError as exc:
        raise SFTPClaimError(f"writing the receipt {path} failed: {type(exc).__name__}: {exc}") from exc
    return path


def claim_status(sftp: paramiko.SFTPClient, in_progress_dir: str, manifest_id: str) -> dict[str, list[str]]:
    """
    A claim's files (their paths in ``in_progress_dir``) split into ``sent`` and ``unsent``.

    A file is sent when a receipt of :func:`record_sent` lists its path with the size and mtime it
    was claimed with (receipts and claims older than these identities compare paths only).
    Completes the claim first if a crash interrupted it, as a retried claim would.

    :raises SFTPClaimError: there is no claim ``manifest_id`` in ``in_progress_dir``
    """
    if _read_json(sftp, manifest_path(in_progress_dir, manifest_id)) is None:
        raise SFTPClaimError(f"no claim {manifest_id} in {in_progress_dir}")
    claimed = claim_files(sftp, [], in_progress_dir, manifest_id)
    sent_dir = record_dir(in_progress_dir, SENT_DIR)
    receipts: dict[str, list[Mapping[str, Any]]] = {}
    for name in _listdir(sftp, sent_dir):
        if name.endswith(".json"):
            for entry in (_read_json(sftp, posixpath.join(sent_dir, name)) or {}).get("files", []):
                entry = {"path": entry} if isinstance(entry, str) else entry
                receipts.setdefault(entry["path"], []).append(entry)

    def is_sent(item: ClaimedFile) -> bool:
        return any(
            not differences(entry.get("size"), entry.get("mtime"), item.size, item.mtime)
            for entry in receipts.get(item.backup_path, [])
        )

    return {
        "sent": [item.backup_path for item in claimed if is_sent(item)],
        "unsent": [item.backup_path for item in claimed if not is_sent(item)],
    }


def sent_message_ids(sftp: paramiko.SFTPClient, in_progress_dir: str) -> set[str]:
    """
    The message ids of the batches with a receipt in ``in_progress_dir`` (one listing, no file read).

    :param in_progress_dir: the dated in-progress directory
    """
    return message_ids(sftp, in_progress_dir, SENT_DIR)


def message_ids(sftp: paramiko.SFTPClient, claim_dir: str, kind: str, planned: bool = False) -> set[str]:
    """
    The message ids of the batches with a record of ``kind`` in ``claim_dir`` (one listing, no file read).

    :param kind: ``SENT_DIR``, ``REJECTED_DIR``, ``COMPLETED_DIR`` or ``BATCHES_DIR``
    :param planned: the batches whose move or delete of ``kind`` is planned but not finished instead
    """
    suffix = f".json{PLAN_SUFFIX}" if planned else ".json"
    names = _listdir(sftp, record_dir(claim_dir, kind))
    return {name.removesuffix(suffix) for name in names if name.endswith(suffix)}


def _present(sftp: paramiko.SFTPClient, folder: str) -> dict[str, paramiko.SFTPAttributes]:
    """The entries of ``folder`` by name (none when it is missing)."""
    try:
        return {entry.filename: entry for entry in sftp.listdir_attr(folder)}
    except FileNotFoundError:
        return {}


def relocate(
    sftp: paramiko.SFTPClient,
    claim_dir: str,
    kind: str,
    message_id: str,
    files: Iterable[Mapping[str, Any]],
    target_dir: str | None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """
    Move a batch's files out of ``claim_dir`` into ``target_dir`` (or delete them when it is ``None``).

    The plan (each file's path, size, mtime and new path) is written first, once, to
    ``<claim_dir>/.claims/<kind>/<message_id>.json.plan``; a repeat, after a crash too, carries out
    that same plan. Once every file is handled the plan becomes ``<kind>/<message_id>.json``, the
    record that the batch is done (:func:`message_ids` lists those; ``planned=True`` the others).
    A file is renamed (never copied, never over another) or removed only while it is still at its
    path with the size and mtime the plan names; a ``target_dir`` batch also gets the record beside
    its files, ``<target_dir>/<message_id>.json``. Returns the record.

    :param kind: ``REJECTED_DIR`` or ``COMPLETED_DIR``
    :param files: the batch's claimed files (dicts with ``backup_path``, ``size``, ``mtime``)
    :param target_dir: where the files go (created when missing); ``None`` deletes them
    :param details: more fields of the record (status, answer, attempts, ...)
    :raises SFTPClaimError: the server refused a rename, a removal or a record
    """
    path = record_path(claim_dir, kind, message_id)
    plan = f"{path}{PLAN_SUFFIX}"
    try:
        record = _read_json(sftp, path) or _read_json(sftp, plan)
        if record is None:
            taken = set(_present(sftp, target_dir)) if target_dir else set()
            planned = []
            for item in sorted(files, key=lambda entry: str(entry["backup_path"])):
                target = None
                if target_dir:
                    target = posixpath.join(
                        target_dir, unique_name(posixpath.basename(item["backup_path"]), taken)
                    )
                    taken.add(posixpath.basename(target))
                planned.append(
                    {
                        "path": item["backup_path"],
                        "size": item.get("size"),
                        "mtime": item.get("mtime"),
                        "to": target,
                    }
                )
            makedirs(sftp, record_dir(claim_dir, kind))
            content = {"message_id": message_id, **(details or {}), "files": planned}
            record = _write_json_once(sftp, plan, content)
        if target_dir:
            makedirs(sftp, target_dir)
        here = _present(sftp, claim_dir)
        for item in record["files"]:
            entry = here.get(posixpath.basename(item["path"]))
            if entry is None or differences(item["size"], item["mtime"], entry.st_size, entry.st_mtime):
                continue  # done by an earlier call
            if item["to"] is None:
                sftp.remove(item["path"])
            else:
                sftp.rename(item["path"], item["to"])
        if target_dir:
            _write_json_once(sftp, posixpath.join(target_dir, f"{message_id}.json"), record)
        _write_json_once(sftp, path, record)
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(plan)
    except OSError as exc:
        raise SFTPClaimError(
            f"moving batch {message_id} out of {claim_dir} ({kind}) failed: {type(exc).__name__}: {exc}; "
            "its files are in one place, a repeat finishes the move"
        ) from exc
    return record


def record_batch(
    sftp: paramiko.SFTPClient, claim_dir: str, message_id: str, batch: Mapping[str, Any]
) -> dict[str, Any]:
    """
    Record a batch before its first send (files and payload fields), so it can be rebuilt; written once.

    :param claim_dir: the claim folder of the batch's files
    :param batch: ``{"files": [...], "uploaded_by", "source", "profile_code"}``
    :return: the record on the server (the first one written wins)
    """
    path = record_path(claim_dir, BATCHES_DIR, message_id)
    try:
        existing = _read_json(sftp, path)
        if existing is not None:
            return dict(existing)
        makedirs(sftp, record_dir(claim_dir, BATCHES_DIR))
        return dict(_write_json_once(sftp, path, {"message_id": message_id, **batch}))
    except OSError as exc:
        raise SFTPClaimError(f"writing the batch record {path} failed: {type(exc).__name__}: {exc}") from exc


def record_attempt(
    sftp: paramiko.SFTPClient, claim_dir: str, message_id: str, details: Mapping[str, Any]
) -> int:
    """
    Record one more failed send of a batch (``.claims/attempts/<id>.<n>.json``); return how many there are.

    :param details: what the failure was (status, answer, time)
    """
    folder = record_dir(claim_dir, ATTEMPTS_DIR)
    try:
        makedirs(sftp, folder)
        done = {name for name in _listdir(sftp, folder) if name.startswith(f"{message_id}.")}
        number = len(done) + 1
        while f"{message_id}.{number}.json" in done:
            number += 1
        _write_json_once(sftp, posixpath.join(folder, f"{message_id}.{number}.json"), dict(details))
    except OSError as exc:
        raise SFTPClaimError(
            f"recording a failed send in {folder} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return len(done) + 1


def open_batches(
    sftp: paramiko.SFTPClient, claim_dir: str, completion: str = "keep"
) -> dict[str, dict[str, Any]]:
    """
    The recorded batches of ``claim_dir`` that still need work: unsent, or sent but not yet completed.

    Only their records are read (a done batch costs a listing entry, no read).

    :param completion: the completion strategy; with ``keep`` a sent batch needs no more work
    :return: message id -> the batch record plus ``sent``, ``completed``, ``rejecting`` (a move to
        the rejected folder was cut short), ``attempts``,
        ``last_failure`` (the last attempt's record or ``None``) and ``recorded_at`` (the record's mtime)
    """
    listed = {
        kind: _present(sftp, record_dir(claim_dir, kind))
        for kind in (BATCHES_DIR, SENT_DIR, REJECTED_DIR, COMPLETED_DIR)
    }
    attempts = _listdir(sftp, record_dir(claim_dir, ATTEMPTS_DIR))
    batches = {}
    for name, entry in listed[BATCHES_DIR].items():
        sent, completed = name in listed[SENT_DIR], name in listed[COMPLETED_DIR]
        if (
            not name.endswith(".json")
            or name in listed[REJECTED_DIR]
            or (sent and (completed or completion == "keep"))
        ):
            continue
        rejecting = f"{name}{PLAN_SUFFIX}" in listed[REJECTED_DIR]
        record = _read_json(sftp, posixpath.join(record_dir(claim_dir, BATCHES_DIR), name))
        if record is None:
            continue
        message_id = name.removesuffix(".json")
        failed = sorted(
            (other for other in attempts if other.startswith(f"{message_id}.")),
            key=lambda other: int(other.split(".")[1]),
        )
        last = (
            _read_json(sftp, posixpath.join(record_dir(claim_dir, ATTEMPTS_DIR), failed[-1]))
            if failed
            else None
        )
        batches[message_id] = {
            **record,
            "recorded_at": entry.st_mtime,
            "sent": sent,
            "completed": completed,
            "rejecting": rejecting,
            "attempts": len(failed),
            "last_failure": last,
        }
    return batches


def claim_folders(sftp: paramiko.SFTPClient, in_progress_root: str) -> list[str]:
    """
    The dated claim folders under ``in_progress_root`` (``<base>/<in_progress>``), sorted; none when missing.

    :param in_progress_root: the project's in-progress folder
    """
    return sorted(
        posixpath.join(in_progress_root, name)
        for name, entry in _present(sftp, in_progress_root).items()
        if not name.startswith(".") and stat.S_ISDIR(entry.st_mode or 0)
    )


def _records(sftp: paramiko.SFTPClient, claim_dir: str, kind: str) -> dict[str, dict[str, Any]]:
    """The batch records of one kind in ``claim_dir`` by message id."""
    folder = record_dir(claim_dir, kind)
    found = {}
    for message_id in message_ids(sftp, claim_dir, kind):
        record = _read_json(sftp, posixpath.join(folder, f"{message_id}.json"))
        if record is not None:
            found[message_id] = record
    return found


def _paths(records: Mapping[str, Mapping[str, Any]]) -> dict[str, set[str]]:
    """The file paths each record lists (receipt, rejected, completed and batch records)."""
    return {
        message_id: {
            str(entry if isinstance(entry, str) else entry.get("path") or entry.get("backup_path"))
            for entry in record.get("files", [])
        }
        for message_id, record in records.items()
    }


def purge_finished(
    sftp: paramiko.SFTPClient, claim_dir: str, max_age: float, now: float, completion: str = "keep"
) -> list[str]:
    """
    Remove the records of the claims in ``claim_dir`` that are finished and older than ``max_age`` seconds.

    A claim is finished when each of its files has a receipt or a rejected record and, unless
    ``completion`` is ``keep``, every receipt of its files a completed record; its manifest must be
    older than ``max_age``. Its batch records go first (nothing is resent), then receipts, rejected,
    completed and attempt records, placement record and manifest. A ``<id>.purging.json`` marker
    lets a repeat finish a purge a crash interrupted. Returns the purged manifest ids.

    :param max_age: seconds since the manifest was written
    :param now: the current time (epoch seconds)
    :param completion: the project's completion strategy
    """
    folder = claims_folder(claim_dir)
    entries = _present(sftp, folder)
    kinds = (BATCHES_DIR, SENT_DIR, REJECTED_DIR, COMPLETED_DIR)
    paths = {kind: _paths(_records(sftp, claim_dir, kind)) for kind in kinds}
    purged = []
    for name, entry in sorted(entries.items()):
        if not _MANIFEST_NAME.fullmatch(name) or name.endswith(".placed.json"):
            continue
        manifest_id = name.removesuffix(".json")
        purging = f"{manifest_id}.purging.json" in entries
        if not purging and now - (entry.st_mtime or now) < max_age:
            continue
        claimed = set() if purging else {f.backup_path for f in claim_files(sftp, [], claim_dir, manifest_id)}
        mine = {kind: {i for i, listed in paths[kind].items() if listed & claimed} for kind in kinds}
        sent = [paths[SENT_DIR][i] for i in mine[SENT_DIR]]
        done = set().union(*sent, *(paths[REJECTED_DIR][i] for i in mine[REJECTED_DIR]))
        uncompleted = mine[SENT_DIR] - mine[COMPLETED_DIR] if completion != "keep" else set()
        if not purging and (not claimed <= done or uncompleted):
            continue
        marker = posixpath.join(folder, f"{manifest_id}.purging.json")
        _write_json_once(
            sftp, marker, {"manifest_id": manifest_id, "batches": sorted(set().union(*mine.values()))}
        )
        owned = set((_read_json(sftp, marker) or {}).get("batches", []))
        for kind in kinds:
            for message_id in sorted(owned & set(paths[kind])):
                record = record_path(claim_dir, kind, message_id)
                for path in (record, f"{record}{PLAN_SUFFIX}"):
                    with contextlib.suppress(FileNotFoundError):
                        sftp.remove(path)
        for attempt in sorted(_listdir(sftp, record_dir(claim_dir, ATTEMPTS_DIR))):
            if attempt.split(".", 1)[0] in owned:
                sftp.remove(posixpath.join(record_dir(claim_dir, ATTEMPTS_DIR), attempt))
        for other in sorted(entries):
            if other.startswith(f"{manifest_id}.returned.") or other == f"{manifest_id}.placed.json":
                sftp.remove(posixpath.join(folder, other))
        sftp.remove(manifest_path(claim_dir, manifest_id))
        sftp.remove(marker)
        purged.append(manifest_id)
    for name in sorted(entries):  # a purge a crash cut short after removing the manifest
        if name.endswith(".purging.json") and f"{name.removesuffix('.purging.json')}.json" not in entries:
            sftp.remove(posixpath.join(folder, name))
    return purged


def folder_status(sftp: paramiko.SFTPClient, claim_dir: str) -> dict[str, int]:
    """
    How many files of ``claim_dir`` are claimed, sent, unsent, rejected and completed (read only).

    ``claimed`` counts the files the claims placed there (a file returned to the input folder
    excluded); ``sent`` those a receipt lists; ``rejected`` and ``completed`` those moved or
    deleted by :func:`relocate`; ``unsent`` the claimed ones neither sent nor rejected.
    """
    entries = _listdir(sftp, claims_folder(claim_dir))
    claimed = 0
    for name in entries:
        if name.endswith(".placed.json"):
            placements, _ = _load_placements(
                _read_json(sftp, posixpath.join(claims_folder(claim_dir), name)) or {}
            )
            manifest_id = name.removesuffix(".placed.json")
            claimed += len(placements) - sum(
                1 for other in entries if other.startswith(f"{manifest_id}.returned.")
            )
    counts = {
        kind: len(set().union(*_paths(_records(sftp, claim_dir, kind)).values()))
        for kind in (SENT_DIR, REJECTED_DIR, COMPLETED_DIR)
    }
    return {
        "claimed": claimed,
        "sent": counts[SENT_DIR],
        "unsent": max(claimed - counts[SENT_DIR] - counts[REJECTED_DIR], 0),
        "rejected": counts[REJECTED_DIR],
        "completed": counts[COMPLETED_DIR],
    }


def project_status(
    sftp: paramiko.SFTPClient,
    base_path: str,
    source_dir: str = "input",
    in_progress_dir: str = "in_progress",
    dates: Iterable[str] | None = None,
) -> dict[str, Any]:
    """
    A project at a glance: files ready in the input folder, and :func:`folder_status` per date folder.

    :param base_path: the project's folder
    :param dates: the date folders to count (e.g. the last days in the project's format); all when ``None``
    :return: ``{"ready": n, "folders": {date: counts}, "total": counts summed}``
    """
    wanted = None if dates is None else set(dates)
    ready = sum(
        1
        for name, entry in _present(sftp, posixpath.join(base_path, source_dir)).items()
        if not name.startswith(".") and stat.S_ISREG(entry.st_mode or 0)
    )
    folders = {}
    for folder in claim_folders(sftp, posixpath.join(base_path, in_progress_dir)):
        date = posixpath.basename(folder)
        if wanted is None or date in wanted:
            folders[date] = folder_status(sftp, folder)
    keys = ("claimed", "sent", "unsent", "rejected", "completed")
    total = {key: sum(counts[key] for counts in folders.values()) for key in keys}
    return {"ready": ready, "folders": folders, "total": total}
