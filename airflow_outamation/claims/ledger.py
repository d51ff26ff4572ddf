"""The batch ledger of a claim folder: batch records, receipts, attempts, rejected and completed moves."""

from __future__ import annotations

import posixpath
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import paramiko
from paramiko.sftp import SFTP_NO_SUCH_FILE, SFTP_OK

from airflow_outamation.batching import SHA256
from airflow_outamation.claims.names import differences, unique_name
from airflow_outamation.claims.protocol import ClaimedFile, claim_files
from airflow_outamation.claims.records import (
    ATTEMPTS_DIR,
    BATCHES_DIR,
    COMPLETED_DIR,
    LEASES_DIR,
    PLAN_SUFFIX,
    RECORD_VERSION,
    REJECTED_DIR,
    SENT_DIR,
    listdir,
    manifest_path,
    present,
    read_json,
    read_json_many,
    record_dir,
    record_path,
    status_error,
    write_json_many,
)
from airflow_outamation.claims.renames import folder_lock, renames_without_replacing
from airflow_outamation.exceptions import SFTPClaimError
from airflow_outamation.sftp_paths import makedirs
from airflow_outamation.sftp_pipelining import pipelined_removes

#: Names a move tries when other moves keep taking the free name it found.
MOVE_TRIES = 10


def file_key(entry: Mapping[str, Any] | str) -> tuple[Any, ...]:
    """
    How a record knows a file: ``("claim", claim id, index)``, its identity within its claim.

    Records written by 0.3 have no index: their files are known by ``("path", path, size, mtime)``
    (the mtime in whole seconds; a bare path string has neither).

    :param entry: a file of a record: a claimed file's dict, a receipt or move entry, or a path
    """
    if isinstance(entry, str):
        return ("path", entry, None, None)
    claim, index = entry.get("claim_id") or entry.get("manifest_id"), entry.get("index")
    if claim is not None and index is not None:
        return ("claim", str(claim), int(index))
    size, mtime = entry.get("size"), entry.get("mtime")
    return (
        "path",
        str(entry.get("path") or entry.get("backup_path")),
        None if size is None else int(size),
        None if mtime is None else int(float(mtime)),
    )


def claimed_keys(item: ClaimedFile) -> set[tuple[Any, ...]]:
    """The keys a record may know a claimed file by: its claim identity; in 0.3's records its path."""
    keys = {
        file_key({"path": item.backup_path, "size": item.size, "mtime": item.mtime}),
        file_key(item.backup_path),
    }
    if item.manifest_id is not None and item.index is not None:
        keys.add(("claim", item.manifest_id, item.index))
    return keys


def _identity(item: Mapping[str, Any]) -> dict[str, Any]:
    """``{"claim_id", "index"}`` of a claimed file (XCom dict); empty for a file claimed by 0.3."""
    if item.get("manifest_id") is None or item.get("index") is None:
        return {}
    return {"claim_id": item["manifest_id"], "index": item["index"]}


def _receipt_entry(sftp: paramiko.SFTPClient, item: Mapping[str, Any] | str) -> dict[str, Any]:
    """A sent file's path, size, mtime, claim identity (and checksum): as claimed, or read from the server."""
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
    identity = _identity(item) if isinstance(item, Mapping) else {}
    checksum = {SHA256: item[SHA256]} if isinstance(item, Mapping) and item.get(SHA256) else {}
    return {"path": path, "size": size, "mtime": mtime, **identity, **checksum}


def record_sent(
    sftp: paramiko.SFTPClient,
    in_progress_dir: str,
    message_id: str,
    files: Iterable[Mapping[str, Any] | str],
) -> str:
    """
    Write the receipt of a batch the API accepted; return its path. A receipt is written once.

    The receipt lists each file's claim identity (claim id and index), path, size and mtime, so a
    later file at the same path is not taken for a sent one, and its ``sha256`` when it was sent with one.

    :param in_progress_dir: the dated in-progress directory holding the batch's files
    :param message_id: the batch's message id
    :param files: the batch's claimed files (dicts with ``backup_path``, ``size``, ``mtime``) or
        their paths (size and mtime are then read from the server)
    """
    return record_sent_many(sftp, in_progress_dir, {message_id: files})[message_id]


def record_sent_many(
    sftp: paramiko.SFTPClient,
    in_progress_dir: str,
    accepted: Mapping[str, Iterable[Mapping[str, Any] | str]],
) -> dict[str, str]:
    """
    Write the receipts of many accepted batches in one pipelined step (:func:`record_sent` each).

    :param accepted: message id -> the batch's claimed files
    :return: message id -> the receipt's path
    """
    paths = {message_id: record_path(in_progress_dir, SENT_DIR, message_id) for message_id in accepted}
    contents = {
        paths[message_id]: {
            "version": RECORD_VERSION,
            "message_id": message_id,
            "files": sorted((_receipt_entry(sftp, item) for item in files), key=lambda entry: entry["path"]),
        }
        for message_id, files in accepted.items()
    }
    try:
        makedirs(sftp, record_dir(in_progress_dir, SENT_DIR))
        write_json_many(sftp, contents)
    except OSError as exc:
        raise SFTPClaimError(
            f"writing {len(contents)} receipt(s) in {record_dir(in_progress_dir, SENT_DIR)} failed: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    return paths


def claim_status(sftp: paramiko.SFTPClient, in_progress_dir: str, manifest_id: str) -> dict[str, list[str]]:
    """
    A claim's files (their paths in ``in_progress_dir``) split into ``sent`` and ``unsent``.

    A file is sent when a receipt of :func:`record_sent` lists its claim identity (receipts written
    by 0.3: its path with the size and mtime it was claimed with).
    Completes the claim first if a crash interrupted it, as a retried claim would.

    :raises SFTPClaimError: there is no claim ``manifest_id`` in ``in_progress_dir``
    """
    if read_json(sftp, manifest_path(in_progress_dir, manifest_id)) is None:
        raise SFTPClaimError(f"no claim {manifest_id} in {in_progress_dir}")
    claimed = claim_files(sftp, [], in_progress_dir, manifest_id)
    sent = set().union(*record_keys(sftp, in_progress_dir, SENT_DIR).values())
    is_sent = {item.backup_path: bool(claimed_keys(item) & sent) for item in claimed}
    return {
        "sent": [item.backup_path for item in claimed if is_sent[item.backup_path]],
        "unsent": [item.backup_path for item in claimed if not is_sent[item.backup_path]],
    }


def record_keys(sftp: paramiko.SFTPClient, claim_dir: str, kind: str) -> dict[str, set[tuple[Any, ...]]]:
    """The files (:func:`file_key`) each batch record of ``kind`` in ``claim_dir`` lists, by message id."""
    folder = record_dir(claim_dir, kind)
    paths = {
        message_id: posixpath.join(folder, f"{message_id}.json")
        for message_id in message_ids(sftp, claim_dir, kind)
    }
    records = read_json_many(sftp, paths.values())
    return {
        message_id: {file_key(entry) for entry in records[path].get("files", [])}
        for message_id, path in paths.items()
        if records[path] is not None
    }


def slowest_wait(sftp: paramiko.SFTPClient, claim_dir: str) -> float | None:
    """
    The longest any sent file of ``claim_dir`` waited, in seconds: from the end of its upload (its
    mtime as claimed) to its receipt (the API accepted it); ``None`` when no receipt lists an mtime.
    """
    folder = record_dir(claim_dir, SENT_DIR)
    receipts = {
        posixpath.join(folder, name): entry.st_mtime
        for name, entry in present(sftp, folder).items()
        if name.endswith(".json") and entry.st_mtime is not None
    }
    records = read_json_many(sftp, receipts)
    waits = [
        max(accepted - float(item["mtime"]), 0.0)
        for path, accepted in receipts.items()
        for item in (records[path] or {}).get("files", [])
        if item.get("mtime") is not None
    ]
    return max(waits, default=None)


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
    names = listdir(sftp, record_dir(claim_dir, kind))
    return {name.removesuffix(suffix) for name in names if name.endswith(suffix)}


def _move_files(sftp: paramiko.SFTPClient, moves: Sequence[tuple[str, str]]) -> list[int]:
    """
    Give files new names in one folder, never over an existing one, pipelined: how the ledger renames files.

    Where the server's rename replaces, under the lock of the targets' folder.

    :param moves: ``(old, new)`` paths, every ``new`` in the same folder
    :return: each move's SFTP status (``SFTP_FAILURE`` for a taken name)
    """
    if not moves:
        return []
    folder = posixpath.dirname(moves[0][1])
    with folder_lock(sftp, folder, posixpath.basename(moves[0][0])):
        return renames_without_replacing(sftp, moves, folder)


def _move_file(sftp: paramiko.SFTPClient, old: str, new: str) -> None:
    """
    :func:`_move_files` for one file.

    :raises OSError: the server refused, or ``new`` exists
    """
    status = _move_files(sftp, [(old, new)])[0]
    if status != SFTP_OK:
        raise status_error(status, f"renaming {old} to {new}")


def _move_to_free_name(sftp: paramiko.SFTPClient, path: str, target: str) -> str:
    """
    Move ``path`` to ``target``, or to the next free `` (n)`` name if that was taken; return where.

    A file another call of the same plan moved meanwhile (two runs finishing it at once) is left.
    """
    folder = posixpath.dirname(target)
    for _ in range(MOVE_TRIES - 1):
        try:
            _move_file(sftp, path, target)
            return target
        except OSError:
            try:
                sftp.stat(path)
            except FileNotFoundError:
                return target  # moved by another call of this plan
            taken = listdir(sftp, folder)
            if posixpath.basename(target) not in taken:
                raise
            target = posixpath.join(folder, unique_name(posixpath.basename(path), taken))
    _move_file(sftp, path, target)
    return target


def settled(sftp: paramiko.SFTPClient, claim_dir: str) -> dict[str, set[str]]:
    """
    The message ids of the batches of ``claim_dir`` that are not to be sent again (listings, no read).

    :return: ``{"sent": ..., "rejected": ..., "rejecting": ...}``: with a receipt, moved to the
        rejected folder, and whose move there was cut short (a repeat of :func:`reject` finishes it)
    """
    return {
        "sent": message_ids(sftp, claim_dir, SENT_DIR),
        "rejected": message_ids(sftp, claim_dir, REJECTED_DIR),
        "rejecting": message_ids(sftp, claim_dir, REJECTED_DIR, planned=True),
    }


def complete(
    sftp: paramiko.SFTPClient,
    claim_dir: str,
    message_id: str,
    files: Iterable[Mapping[str, Any]],
    target_dir: str | None,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """Complete an accepted batch: move its files to ``target_dir``, or delete them; see :func:`relocate`."""
    return relocate(sftp, claim_dir, COMPLETED_DIR, message_id, files, target_dir, details)


def reject(
    sftp: paramiko.SFTPClient,
    claim_dir: str,
    message_id: str,
    files: Iterable[Mapping[str, Any]],
    target_dir: str,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """Move a refused (or given up) batch's files to ``target_dir`` with its record; see :func:`relocate`."""
    return relocate(sftp, claim_dir, REJECTED_DIR, message_id, files, target_dir, details)


def complete_many(
    sftp: paramiko.SFTPClient,
    claim_dir: str,
    batches: Mapping[str, Iterable[Mapping[str, Any]]],
    target_dir: str | None,
    details: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """Complete many accepted batches of ``claim_dir`` at once; see :func:`relocate_many`."""
    return relocate_many(sftp, claim_dir, COMPLETED_DIR, batches, target_dir, details)


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
    path with the size and mtime the plan names; when another move took its planned name meanwhile,
    it gets the next free `` (n)`` name (the record says where it went). A ``target_dir`` batch also
    gets the record beside its files, ``<target_dir>/<message_id>.json``. Returns the record.

    :param kind: ``REJECTED_DIR`` or ``COMPLETED_DIR``
    :param files: the batch's claimed files (dicts with ``backup_path``, ``size``, ``mtime``)
    :param target_dir: where the files go (created when missing); ``None`` deletes them
    :param details: more fields of the record (status, answer, attempts, ...)
    :raises SFTPClaimError: the server refused a rename, a removal or a record
    """
    return relocate_many(sftp, claim_dir, kind, {message_id: files}, target_dir, details)[message_id]


def relocate_many(
    sftp: paramiko.SFTPClient,
    claim_dir: str,
    kind: str,
    batches: Mapping[str, Iterable[Mapping[str, Any]]],
    target_dir: str | None,
    details: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """
    Move (or delete) the files of many batches of ``claim_dir`` at once, each with its own plan and record.

    Each step (read the plans, write the missing ones, rename or remove the files, write the
    records, remove the plans) is one pipelined step for all the batches: the round trips do not
    grow with their number. The steps keep :func:`relocate`'s order, so a crash leaves every batch
    where a repeat finishes it.

    :param batches: message id -> the batch's claimed files
    :return: message id -> the batch's record
    """
    records = {message_id: record_path(claim_dir, kind, message_id) for message_id in batches}
    plans = {message_id: f"{path}{PLAN_SUFFIX}" for message_id, path in records.items()}
    try:
        found = read_json_many(sftp, [*records.values(), *plans.values()])
        planned = {i: found[records[i]] or found[plans[i]] for i in batches}
        unplanned = {i: files for i, files in batches.items() if planned[i] is None}
        if unplanned:
            content = {"version": RECORD_VERSION, **(details or {})}
            planned.update(_write_plans(sftp, claim_dir, kind, unplanned, target_dir, content))
        if target_dir:
            makedirs(sftp, target_dir)
        done = _carry_out(sftp, claim_dir, planned)
        if target_dir:
            write_json_many(sftp, {posixpath.join(target_dir, f"{i}.json"): done[i] for i in batches})
        write_json_many(sftp, {records[i]: done[i] for i in batches})
        pipelined_removes(sftp, list(plans.values()))
    except OSError as exc:
        raise SFTPClaimError(
            f"moving batch(es) {', '.join(batches)} out of {claim_dir} ({kind}) failed: "
            f"{type(exc).__name__}: {exc}; their files are in one place, a repeat finishes the move"
        ) from exc
    return done


def _write_plans(
    sftp: paramiko.SFTPClient,
    claim_dir: str,
    kind: str,
    batches: Mapping[str, Iterable[Mapping[str, Any]]],
    target_dir: str | None,
    content: Mapping[str, Any],
) -> dict[str, dict[str, Any]]:
    """Write the plans of ``batches`` (once each: an existing plan wins); return them by message id."""
    taken = set(present(sftp, target_dir)) if target_dir else set()
    plans = {}
    for message_id, files in batches.items():
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
                    **_identity(item),
                    "to": target,
                }
            )
        path = f"{record_path(claim_dir, kind, message_id)}{PLAN_SUFFIX}"
        plans[path] = (message_id, {**content, "message_id": message_id, "files": planned})
    makedirs(sftp, record_dir(claim_dir, kind))
    written = write_json_many(sftp, {path: plan for path, (_, plan) in plans.items()})
    return {message_id: written[path] for path, (message_id, _) in plans.items()}


def _carry_out(
    sftp: paramiko.SFTPClient, claim_dir: str, plans: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """
    Rename or remove the files ``plans`` name that are still as planned (pipelined); return the records.

    A file no longer at its path with its planned size and mtime was handled by an earlier call.
    """
    here = present(sftp, claim_dir)
    due = [
        item
        for plan in plans.values()
        for item in plan["files"]
        if (entry := here.get(posixpath.basename(item["path"]))) is not None
        and not differences(item["size"], item["mtime"], entry.st_size, entry.st_mtime)
    ]
    removals = [item["path"] for item in due if item["to"] is None]
    for path, status in zip(removals, pipelined_removes(sftp, removals), strict=True):
        if status not in (SFTP_OK, SFTP_NO_SUCH_FILE):  # gone: removed by another call of the plan
            raise status_error(status, f"removing {path}")
    by_folder: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for item in due:
        if item["to"] is not None:
            by_folder[posixpath.dirname(item["to"])].append((item["path"], item["to"]))
    moved = {}
    for moves in by_folder.values():
        for (old, new), status in zip(moves, _move_files(sftp, moves), strict=True):
            moved[old] = new if status == SFTP_OK else _move_to_free_name(sftp, old, new)
    return {
        message_id: {
            **plan,
            "files": [{**item, "to": moved.get(item["path"], item["to"])} for item in plan["files"]],
        }
        for message_id, plan in plans.items()
    }


def record_batch(
    sftp: paramiko.SFTPClient, claim_dir: str, message_id: str, batch: Mapping[str, Any]
) -> dict[str, Any]:
    """
    Record a batch before its first send (files and payload fields), so it can be rebuilt; written once.

    :param claim_dir: the claim folder of the batch's files
    :param batch: ``{"files": [...], "uploaded_by", "source", "profile_code"}``
    :return: the record on the server (the first one written wins)
    """
    return record_batch_many(sftp, claim_dir, {message_id: batch})[message_id]


def record_batch_many(
    sftp: paramiko.SFTPClient, claim_dir: str, batches: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """
    Record many batches before their first send in one pipelined step (:func:`record_batch` each).

    :param batches: message id -> ``{"files": [...], "uploaded_by", "source", "profile_code"}``
    :return: message id -> the record on the server (the first one written wins)
    """
    folder = record_dir(claim_dir, BATCHES_DIR)
    try:
        makedirs(sftp, folder)
        present = listdir(sftp, folder)
        records = {
            message_id: read_json(sftp, record_path(claim_dir, BATCHES_DIR, message_id))
            for message_id in batches
            if f"{message_id}.json" in present
        }
        missing = {
            record_path(claim_dir, BATCHES_DIR, message_id): (
                message_id,
                {"version": RECORD_VERSION, "message_id": message_id, **batch},
            )
            for message_id, batch in batches.items()
            if records.get(message_id) is None
        }
        written = write_json_many(sftp, {path: content for path, (_, content) in missing.items()})
    except OSError as exc:
        raise SFTPClaimError(
            f"writing batch records in {folder} failed: {type(exc).__name__}: {exc}"
        ) from exc
    records.update({message_id: written[path] for path, (message_id, _) in missing.items()})
    return {message_id: dict(records[message_id]) for message_id in batches}


def record_attempt(
    sftp: paramiko.SFTPClient, claim_dir: str, message_id: str, details: Mapping[str, Any]
) -> int:
    """
    Record one more failed send of a batch (``.claims/attempts/<id>.<n>.json``); return how many there are.

    :param details: what the failure was (status, answer, time)
    """
    return record_attempts(sftp, claim_dir, {message_id: details})[message_id]


def record_attempts(
    sftp: paramiko.SFTPClient, claim_dir: str, failed: Mapping[str, Mapping[str, Any]]
) -> dict[str, int]:
    """
    Record one more failed send of many batches in one pipelined step (:func:`record_attempt` each).

    :param failed: message id -> what its failure was (status, answer, time)
    :return: message id -> how many failed sends the batch has now
    """
    folder = record_dir(claim_dir, ATTEMPTS_DIR)
    counts: dict[str, int] = {}
    contents: dict[str, dict[str, Any]] = {}
    try:
        makedirs(sftp, folder)
        earlier: dict[str, set[str]] = defaultdict(set)
        for name in listdir(sftp, folder):
            earlier[name.split(".", 1)[0]].add(name)
        for message_id, details in failed.items():
            done = earlier[message_id]
            number = len(done) + 1
            while f"{message_id}.{number}.json" in done:
                number += 1
            counts[message_id] = len(done) + 1
            contents[posixpath.join(folder, f"{message_id}.{number}.json")] = {
                "version": RECORD_VERSION,
                **details,
            }
        write_json_many(sftp, contents)
    except OSError as exc:
        raise SFTPClaimError(
            f"recording {len(failed)} failed send(s) in {folder} failed: {type(exc).__name__}: {exc}"
        ) from exc
    return counts


def open_batches(
    sftp: paramiko.SFTPClient, claim_dir: str, completion: str = "keep"
) -> dict[str, dict[str, Any]]:
    """
    The recorded batches of ``claim_dir`` that still need work: unsent, or sent but not yet completed.

    Only their records are read (a done batch costs a listing entry, no read).

    :param completion: the completion strategy; with ``keep`` a sent batch needs no more work
    :return: message id -> the batch record plus ``sent``, ``sent_at`` (the receipt's mtime),
        ``completed``, ``rejecting`` (a move to the rejected folder was cut short), ``attempts``,
        ``last_failure`` (the last attempt's record or ``None``) and ``recorded_at`` (the record's mtime)
    """
    listed = {
        kind: present(sftp, record_dir(claim_dir, kind))
        for kind in (BATCHES_DIR, SENT_DIR, REJECTED_DIR, COMPLETED_DIR)
    }
    attempts = listdir(sftp, record_dir(claim_dir, ATTEMPTS_DIR))
    open_names = [
        name
        for name in listed[BATCHES_DIR]
        if name.endswith(".json")
        and name not in listed[REJECTED_DIR]
        and not (name in listed[SENT_DIR] and (name in listed[COMPLETED_DIR] or completion == "keep"))
    ]
    failed_of = {
        name: sorted(
            (other for other in attempts if other.startswith(f"{name.removesuffix('.json')}.")),
            key=lambda other: int(other.split(".")[1]),
        )
        for name in open_names
    }
    records = read_json_many(  # the open batches' records and their last failures, pipelined
        sftp,
        [posixpath.join(record_dir(claim_dir, BATCHES_DIR), name) for name in open_names]
        + [
            posixpath.join(record_dir(claim_dir, ATTEMPTS_DIR), failed[-1])
            for failed in failed_of.values()
            if failed
        ],
    )
    batches = {}
    for name in open_names:
        entry = listed[BATCHES_DIR][name]
        sent, completed = name in listed[SENT_DIR], name in listed[COMPLETED_DIR]
        rejecting = f"{name}{PLAN_SUFFIX}" in listed[REJECTED_DIR]
        record = records[posixpath.join(record_dir(claim_dir, BATCHES_DIR), name)]
        if record is None:
            continue
        message_id = name.removesuffix(".json")
        failed = failed_of[name]
        last = records[posixpath.join(record_dir(claim_dir, ATTEMPTS_DIR), failed[-1])] if failed else None
        batches[message_id] = {
            **record,
            "recorded_at": entry.st_mtime,
            "sent": sent,
            "sent_at": listed[SENT_DIR][name].st_mtime if sent else None,
            "completed": completed,
            "rejecting": rejecting,
            "attempts": len(failed),
            "last_failure": last,
        }
    return batches


def _generations(names: Iterable[str], message_id: str) -> list[int]:
    """The lease generations of ``message_id`` among the names of the leases folder, oldest first."""
    found = []
    for name in names:
        stem = name.removeprefix(f"{message_id}.").removesuffix(".json")
        if name.startswith(f"{message_id}.") and name.endswith(".json") and stem.isdigit():
            found.append(int(stem))
    return sorted(found)


def take_leases(
    sftp: paramiko.SFTPClient,
    claim_dir: str,
    message_ids: Iterable[str],
    holder: str,
    seconds: float,
    now: float,
) -> dict[str, int]:
    """
    Lease batches for sending; return the ones ``holder`` got, with their lease generation.

    A lease is a record written once, ``.claims/leases/<message_id>.<n>.json`` (holder, expiry).
    A batch whose newest lease is another holder's and not expired is left to that holder; an
    expired one is taken over by writing generation ``n + 1``: of two runs taking over at once,
    exactly one writes it (the other finds it written and leaves the batch).

    :param holder: who sends: one task instance (its retries take its leases over at once)
    :param seconds: how long the lease holds if its holder never releases it (a worker that died)
    :param now: the current time (epoch seconds)
    """
    folder = record_dir(claim_dir, LEASES_DIR)
    taken: dict[str, int] = {}
    wanted: dict[str, tuple[str, int]] = {}
    content = {"version": RECORD_VERSION, "holder": holder, "expires": now + seconds}
    try:
        makedirs(sftp, folder)
        names = listdir(sftp, folder)
        for message_id in message_ids:
            newest = ([0, *_generations(names, message_id)])[-1]
            if newest:
                lease = read_json(sftp, posixpath.join(folder, f"{message_id}.{newest}.json")) or {}
                if lease.get("holder") == holder:
                    taken[message_id] = newest
                if lease.get("holder") == holder or float(lease.get("expires", 0)) > now:
                    continue
            wanted[posixpath.join(folder, f"{message_id}.{newest + 1}.json")] = (message_id, newest + 1)
        written = write_json_many(sftp, dict.fromkeys(wanted, content))
    except OSError as exc:
        raise SFTPClaimError(f"leasing batches in {folder} failed: {type(exc).__name__}: {exc}") from exc
    for path, (message_id, generation) in wanted.items():
        if written[path].get("holder") == holder:
            taken[message_id] = generation
    return taken


def release_leases(sftp: paramiko.SFTPClient, claim_dir: str, leases: Mapping[str, int]) -> None:
    """Remove the leases of :func:`take_leases` and the expired ones before them (pipelined, none read)."""
    folder = record_dir(claim_dir, LEASES_DIR)
    names = listdir(sftp, folder)
    doomed = [
        posixpath.join(folder, f"{message_id}.{number}.json")
        for message_id, generation in leases.items()
        for number in _generations(names, message_id)
        if number <= generation
    ]
    pipelined_removes(sftp, doomed)
