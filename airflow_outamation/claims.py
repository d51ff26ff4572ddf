"""
Claim ready files into the dated in-progress folder: atomic renames, exactly once, crash-safe.

A claim runs in three phases, each of which a retry (same manifest id) can resume:

1. **Stage.** The manifest ``<dir>/.claims/<id>.json`` (the intended sources) is written first.
   Each source is then renamed into the claim's own staging folder ``<dir>/.claims/<id>/``. The
   rename is the lock: when two claims race for a file, exactly one rename succeeds and the other
   finds the source gone and skips it. Whatever sits in the staging folder belongs to this claim.
2. **Place.** The final names are chosen (a name already taken gets `` (1)``, `` (2)``, ...) and
   written once to ``<dir>/.claims/<id>.placed.json``.
3. **Move.** Each staged file is renamed to its final name; if another claim took that name in the
   meantime, to a name unique to this claim. Nothing is ever overwritten or copied.

At every instant a file is in the input folder or under ``<dir>`` (staging included). Renames of
one phase are pipelined (many requests in flight), so 1,000 files do not cost 1,000 round trips.

Once the document API accepted a batch, a receipt ``<dir>/.claims/sent/<message_id>.json`` lists
its files; :func:`claim_status` tells a claim's sent files from its unsent ones.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import paramiko
from paramiko.message import Message
from paramiko.sftp import CMD_RENAME, CMD_STATUS, SFTP_NO_SUCH_FILE, SFTP_OK

from airflow_outamation.exceptions import SFTPClaimError
from airflow_outamation.readiness import RemoteFile
from airflow_outamation.sftp_paths import exists, makedirs

CLAIMS_DIR = ".claims"
#: Receipts of batches the API accepted, under ``<dir>/.claims/``.
SENT_DIR = "sent"
#: SFTP requests kept in flight while renaming.
PIPELINE_DEPTH = 64


@dataclass(frozen=True)
class ClaimedFile:
    """A file moved into the in-progress folder; ``backup_path`` is where it is now."""

    filename: str
    source_path: str
    backup_path: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``stem (n).ext`` with the smallest ``n`` not in ``taken``."""
    if name not in taken:
        return name
    stem, ext = posixpath.splitext(name)
    n = 1
    while f"{stem} ({n}){ext}" in taken:
        n += 1
    return f"{stem} ({n}){ext}"


def _own_name(name: str, manifest_id: str) -> str:
    """A name no other claim can choose: the stem carries a digest of this claim's id."""
    stem, ext = posixpath.splitext(name)
    token = hashlib.sha256(manifest_id.encode()).hexdigest()[:8]
    return f"{stem} (claim {token}){ext}"


def source_paths(files: Iterable[RemoteFile | Mapping[str, Any] | str]) -> list[str]:
    """The distinct source paths of ``files`` (``RemoteFile``, XCom dicts with ``path``, or paths), sorted."""
    paths = set()
    for item in files:
        if isinstance(item, RemoteFile):
            paths.add(item.path)
        elif isinstance(item, Mapping):
            paths.add(str(item.get("path") or item["source_path"]))
        else:
            paths.add(str(item))
    return sorted(paths)


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


def claim_files(
    sftp: paramiko.SFTPClient,
    files: Iterable[RemoteFile | Mapping[str, Any] | str],
    in_progress_dir: str,
    manifest_id: str,
) -> list[ClaimedFile]:
    """
    Move ``files`` into ``in_progress_dir`` exactly once; a repeated call with ``manifest_id`` resumes.

    A repeated call returns the same claimed set as the first (``files`` is then ignored: the
    manifest is the record). Sources that are gone (claimed by another run) are skipped.

    :param sftp: an open SFTP client, used by this call alone
    :param files: the files to claim (``RemoteFile``, XCom dicts with ``path``, or paths)
    :param in_progress_dir: the dated in-progress directory; created when missing
    :param manifest_id: names this claim's manifest, e.g. ``<dag_id>__<run_id>``
    :raises SFTPClaimError: the server refused a rename or a directory (permission denied, ...)
    """
    claims_dir = posixpath.join(in_progress_dir, CLAIMS_DIR)
    staging_dir = posixpath.join(claims_dir, manifest_id)
    try:
        makedirs(sftp, claims_dir)
        manifest = _read_json(sftp, posixpath.join(claims_dir, f"{manifest_id}.json"))
        if manifest is None:
            manifest = _write_json_once(
                sftp,
                posixpath.join(claims_dir, f"{manifest_id}.json"),
                {"manifest_id": manifest_id, "sources": source_paths(files)},
            )
        sources: list[str] = manifest["sources"]
        staged_names = [f"{index:05d}__{posixpath.basename(path)}" for index, path in enumerate(sources)]
        placed_path = posixpath.join(claims_dir, f"{manifest_id}.placed.json")
        placements = _read_json(sftp, placed_path)
        if placements is None:
            makedirs(sftp, staging_dir)
            _stage(sftp, sources, staged_names, staging_dir)
            placements = _write_json_once(
                sftp, placed_path, _place(sftp, sources, staged_names, staging_dir, in_progress_dir)
            )
        claimed = _move(sftp, sources, staged_names, placements, staging_dir, in_progress_dir, manifest_id)
        if exists(sftp, staging_dir) and not sftp.listdir(staging_dir):
            sftp.rmdir(staging_dir)
    except SFTPClaimError:
        raise
    except (OSError, KeyError, ValueError) as exc:
        raise SFTPClaimError(f"claiming into {in_progress_dir} failed: {type(exc).__name__}: {exc}") from exc
    return claimed


def _stage(sftp: paramiko.SFTPClient, sources: list[str], staged_names: list[str], staging_dir: str) -> None:
    """Phase 1: rename every source still present into this claim's staging folder."""
    already = _listdir(sftp, staging_dir)
    moves = [
        (source, posixpath.join(staging_dir, staged))
        for source, staged in zip(sources, staged_names, strict=True)
        if staged not in already
    ]
    refused = [
        f"{old} ({status})"
        for (old, _), status in zip(moves, pipelined_renames(sftp, moves), strict=True)
        if status not in (SFTP_OK, SFTP_NO_SUCH_FILE)
    ]
    if refused:
        raise SFTPClaimError(
            f"the server refused to move {len(refused)} file(s) into {staging_dir} (SFTP status codes): "
            f"{', '.join(refused[:5])}; every file is still in its source folder or under that folder"
        )


def _place(
    sftp: paramiko.SFTPClient,
    sources: list[str],
    staged_names: list[str],
    staging_dir: str,
    in_progress_dir: str,
) -> dict[str, str]:
    """Phase 2: choose a free final name for every staged file (staging name -> final name)."""
    staged = _listdir(sftp, staging_dir)
    taken = _listdir(sftp, in_progress_dir)
    placements = {}
    for source, name in zip(sources, staged_names, strict=True):
        if name in staged:
            final = unique_name(posixpath.basename(source), taken)
            taken.add(final)
            placements[name] = final
    return placements


def _move(
    sftp: paramiko.SFTPClient,
    sources: list[str],
    staged_names: list[str],
    placements: Mapping[str, str],
    staging_dir: str,
    in_progress_dir: str,
    manifest_id: str,
) -> list[ClaimedFile]:
    """Phase 3: rename staged files to their final names (a name taken meanwhile: this claim's own)."""
    still_staged = _listdir(sftp, staging_dir)
    targets = {name: posixpath.join(in_progress_dir, final) for name, final in placements.items()}
    pending = [name for name in placements if name in still_staged]
    statuses = pipelined_renames(sftp, [(posixpath.join(staging_dir, n), targets[n]) for n in pending])
    retry = [name for name, status in zip(pending, statuses, strict=True) if status != SFTP_OK]
    for name in retry:
        own = posixpath.join(in_progress_dir, _own_name(placements[name], manifest_id))
        sftp.rename(posixpath.join(staging_dir, name), own)
        targets[name] = own
    for name in placements:
        if name not in still_staged:  # moved by an earlier, interrupted call: to its name or our own
            own = posixpath.join(in_progress_dir, _own_name(placements[name], manifest_id))
            if exists(sftp, own):
                targets[name] = own
    by_name = dict(zip(staged_names, sources, strict=True))
    return [
        ClaimedFile(
            filename=posixpath.basename(targets[name]), source_path=by_name[name], backup_path=targets[name]
        )
        for name in staged_names
        if name in placements
    ]


def record_sent(
    sftp: paramiko.SFTPClient, in_progress_dir: str, message_id: str, backup_paths: Iterable[str]
) -> str:
    """
    Write the receipt of a batch the API accepted; return its path. A receipt is written once.

    :param in_progress_dir: the dated in-progress directory holding the batch's files
    :param message_id: the batch's message id
    :param backup_paths: where the batch's files are
    """
    sent_dir = posixpath.join(in_progress_dir, CLAIMS_DIR, SENT_DIR)
    path = posixpath.join(sent_dir, f"{message_id}.json")
    try:
        makedirs(sftp, sent_dir)
        _write_json_once(sftp, path, {"message_id": message_id, "files": sorted(backup_paths)})
    except OSError as exc:
        raise SFTPClaimError(f"writing the receipt {path} failed: {type(exc).__name__}: {exc}") from exc
    return path


def claim_status(sftp: paramiko.SFTPClient, in_progress_dir: str, manifest_id: str) -> dict[str, list[str]]:
    """
    A claim's files (their paths in ``in_progress_dir``) split into ``sent`` and ``unsent``.

    A file is sent when a receipt of :func:`record_sent` lists it. Completes the claim first if a
    crash interrupted it, as a retried claim would.

    :raises SFTPClaimError: there is no claim ``manifest_id`` in ``in_progress_dir``
    """
    claims_dir = posixpath.join(in_progress_dir, CLAIMS_DIR)
    if _read_json(sftp, posixpath.join(claims_dir, f"{manifest_id}.json")) is None:
        raise SFTPClaimError(f"no claim {manifest_id} in {in_progress_dir}")
    claimed = [item.backup_path for item in claim_files(sftp, [], in_progress_dir, manifest_id)]
    sent_dir = posixpath.join(claims_dir, SENT_DIR)
    sent: set[str] = set()
    for name in _listdir(sftp, sent_dir):
        if name.endswith(".json"):
            sent.update((_read_json(sftp, posixpath.join(sent_dir, name)) or {}).get("files", []))
    return {
        "sent": [path for path in claimed if path in sent],
        "unsent": [path for path in claimed if path not in sent],
    }


def sent_message_ids(sftp: paramiko.SFTPClient, in_progress_dir: str) -> set[str]:
    """
    The message ids of the batches with a receipt in ``in_progress_dir`` (one listing, no file read).

    :param in_progress_dir: the dated in-progress directory
    """
    sent_dir = posixpath.join(in_progress_dir, CLAIMS_DIR, SENT_DIR)
    return {name.removesuffix(".json") for name in _listdir(sftp, sent_dir) if name.endswith(".json")}
