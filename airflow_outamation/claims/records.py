"""Where a claim folder keeps its records, and the SFTP primitives that read and write them."""

from __future__ import annotations

import json
import posixpath
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import paramiko
from paramiko.message import Message
from paramiko.sftp import CMD_RENAME, CMD_STATUS, SFTP_DESC

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
#: SFTP requests kept in flight while renaming.
PIPELINE_DEPTH = 64


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


def read_json(sftp: paramiko.SFTPClient, path: str) -> Any:
    try:
        with sftp.open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None


def write_json_once(sftp: paramiko.SFTPClient, path: str, content: Any) -> Any:
    """Write ``content`` atomically (temp name, then rename); return what ``path`` holds if it exists."""
    temporary = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
    with sftp.open(temporary, "wb") as handle:
        handle.write(json.dumps(content, indent=1, ensure_ascii=False).encode())
    try:
        sftp.rename(temporary, path)
    except OSError:
        sftp.remove(temporary)
        existing = read_json(sftp, path)
        if existing is None:
            raise
        return existing
    return content


def listdir(sftp: paramiko.SFTPClient, path: str) -> set[str]:
    try:
        return set(sftp.listdir(path))
    except FileNotFoundError:
        return set()


def status_text(status: int) -> str:
    """``SFTP status 3: Permission denied``."""
    text = SFTP_DESC[status] if 0 <= status < len(SFTP_DESC) else "unknown"
    return f"SFTP status {status}: {text}"


def present(sftp: paramiko.SFTPClient, folder: str) -> dict[str, paramiko.SFTPAttributes]:
    """The entries of ``folder`` by name (none when it is missing)."""
    try:
        return {entry.filename: entry for entry in sftp.listdir_attr(folder)}
    except FileNotFoundError:
        return {}
