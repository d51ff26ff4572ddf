"""Where a claim folder keeps its records, and the SFTP primitives that read and write them."""

from __future__ import annotations

import contextlib
import json
import posixpath
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import paramiko
from paramiko.sftp import CMD_REMOVE, SFTP_DESC, SFTP_NO_SUCH_FILE, SFTP_OK, SFTP_PERMISSION_DENIED

from airflow_outamation.claims.renames import RECORD_LOCK_EXPIRY, folder_lock, renames_without_replacing
from airflow_outamation.sftp_pipelining import pipelined, pipelined_reads, pipelined_writes

CLAIMS_DIR = ".claims"
#: The format of the records written from 0.4 on (``"version": 2``); 0.3's records have no version.
RECORD_VERSION = 2
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
#: Leases of batches being sent: ``<dir>/.claims/leases/<message_id>.<n>.json`` (holder, expiry).
LEASES_DIR = "leases"
#: A move or delete planned but not known to be finished: ``<kind>/<message_id>.json.plan``.
PLAN_SUFFIX = ".plan"


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


def read_json(sftp: paramiko.SFTPClient, path: str) -> Any:
    """
    Read one JSON record; ``None`` when it is missing.

    Its reads are prefetched (sent at once, as ``SFTPClient.get`` does): a claim's manifest of
    10,000 files (~0.7 MB) costs a few round trips, not one per 8 KiB; a small record four, as a
    plain read (open, stat, read, close). Records are renamed into place whole: their size is known.
    """
    try:
        with sftp.open(path, "rb") as handle:
            size = handle.stat().st_size or 0
            handle.prefetch(size)
            return json.loads(handle.read(size))
    except FileNotFoundError:
        return None


def read_json_many(sftp: paramiko.SFTPClient, paths: Iterable[str]) -> dict[str, Any]:
    """
    Read many JSON records in a few pipelined steps (:func:`read_json` each); a missing one is ``None``.

    :param paths: the records' paths
    """
    wanted = list(dict.fromkeys(paths))
    found: dict[str, Any] = {}
    for path, data in pipelined_reads(sftp, wanted).items():
        try:
            found[path] = None if data is None else json.loads(data)
        except ValueError:  # a short read before the end: read it the plain way
            found[path] = read_json(sftp, path)
    return found


def write_json_once(sftp: paramiko.SFTPClient, path: str, content: Any) -> Any:
    """
    Write ``content`` atomically (temp name, then rename) unless ``path`` exists; return what it holds.

    The first writer wins on every kind of server; see :func:`write_json_many`.
    """
    return write_json_many(sftp, {path: content})[path]


def write_json_many(sftp: paramiko.SFTPClient, contents: Mapping[str, Any]) -> dict[str, Any]:
    """
    Write many JSON records, each once, in a few pipelined steps; return what each path holds.

    Each record is written under a temporary name and renamed into place, never over an existing
    record (:func:`~airflow_outamation.claims.renames.renames_without_replacing`, under the lock of
    each folder where renames are not exclusive): the first writer of a path wins on every kind
    of server. Whatever the number of records, the writes cost about six round trips. ASCII JSON:
    a name that is not UTF-8 (lone surrogates, see ``NAME_ENCODING``) round-trips as ``\\udcfc``.

    :param contents: each record's path and content; their folders must exist
    :raises OSError: the server refused a write or a rename (the status names it)
    """
    if not contents:
        return {}
    token = uuid.uuid4().hex[:8]
    temporary = {path: f"{path}.{token}.tmp" for path in contents}
    written = pipelined_writes(
        sftp,
        {temporary[path]: json.dumps(content, indent=1).encode() for path, content in contents.items()},
    )
    folders = sorted({posixpath.dirname(path) for path in contents})
    try:
        for temp, status in written.items():
            if status != SFTP_OK:
                raise status_error(status, f"writing {temp}")
        with contextlib.ExitStack() as locks:
            for folder in folders:
                locks.enter_context(folder_lock(sftp, folder, f"records {token}", expiry=RECORD_LOCK_EXPIRY))
            moves = [(temporary[path], path) for path in contents]
            statuses = dict(zip(contents, renames_without_replacing(sftp, moves, folders[0]), strict=True))
    except BaseException:
        pipelined(sftp, [(CMD_REMOVE, (sftp._adjust_cwd(t),)) for t in temporary.values()])  # type: ignore[attr-defined]
        raise
    taken = [path for path, status in statuses.items() if status != SFTP_OK]
    pipelined(sftp, [(CMD_REMOVE, (sftp._adjust_cwd(temporary[path]),)) for path in taken])  # type: ignore[attr-defined]
    stands = dict(contents)
    for path in taken:
        existing = read_json(sftp, path)
        if existing is None:
            raise status_error(statuses[path], f"renaming {temporary[path]} to {path}")
        stands[path] = existing
    return stands


def listdir(sftp: paramiko.SFTPClient, path: str) -> set[str]:
    try:
        return set(sftp.listdir(path))
    except FileNotFoundError:
        return set()


def status_text(status: int) -> str:
    """``SFTP status 3: Permission denied``."""
    text = SFTP_DESC[status] if 0 <= status < len(SFTP_DESC) else "unknown"
    return f"SFTP status {status}: {text}"


def status_error(status: int, doing: str) -> OSError:
    """The exception paramiko would raise for an SFTP ``status`` answered to ``doing``."""
    kind = {SFTP_NO_SUCH_FILE: FileNotFoundError, SFTP_PERMISSION_DENIED: PermissionError}.get(
        status, OSError
    )
    return kind(f"{doing}: {status_text(status)}")


def present(sftp: paramiko.SFTPClient, folder: str) -> dict[str, paramiko.SFTPAttributes]:
    """The entries of ``folder`` by name (none when it is missing)."""
    try:
        return {entry.filename: entry for entry in sftp.listdir_attr(folder)}
    except FileNotFoundError:
        return {}
