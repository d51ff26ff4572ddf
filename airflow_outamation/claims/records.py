"""Where a claim folder keeps its records, and the SFTP primitives that read and write them."""

from __future__ import annotations

import contextlib
import json
import posixpath
import uuid
from collections.abc import Mapping
from typing import Any

import paramiko
from paramiko.sftp import SFTP_DESC, SFTP_NO_SUCH_FILE, SFTP_OK, SFTP_PERMISSION_DENIED

from airflow_outamation.claims.renames import RECORD_LOCK_EXPIRY, folder_lock, renames_without_replacing

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
    try:
        with sftp.open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None


def write_json_once(sftp: paramiko.SFTPClient, path: str, content: Any) -> Any:
    """
    Write ``content`` atomically (temp name, then rename) unless ``path`` exists; return what it holds.

    The first writer wins on every kind of server: the rename never replaces an existing record
    (:func:`~airflow_outamation.claims.renames.renames_without_replacing`, under the folder's lock
    where the server's rename replaces). ASCII JSON: a name that is not UTF-8 (lone surrogates, see
    ``NAME_ENCODING``) round-trips as ``\\udcfc``.
    """
    folder = posixpath.dirname(path)
    temporary = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    with sftp.open(temporary, "wb") as handle:
        handle.write(json.dumps(content, indent=1).encode())
    try:
        with folder_lock(sftp, folder, posixpath.basename(path), expiry=RECORD_LOCK_EXPIRY):
            status = renames_without_replacing(sftp, [(temporary, path)], folder)[0]
    except BaseException:
        with contextlib.suppress(OSError):
            sftp.remove(temporary)
        raise
    if status == SFTP_OK:
        return content
    sftp.remove(temporary)
    existing = read_json(sftp, path)
    if existing is None:
        raise status_error(status, f"renaming {temporary} to {path}")
    return existing


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
