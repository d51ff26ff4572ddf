"""Housekeeping of claim folders: which exist, retention of finished claims, counts for the status."""

from __future__ import annotations

import posixpath
import re
import stat
from collections.abc import Iterable
from typing import Any

import paramiko
from paramiko.sftp import SFTP_NO_SUCH_FILE, SFTP_OK

from airflow_outamation.claims.ledger import claimed_keys, record_keys
from airflow_outamation.claims.protocol import claim_files, load_placements
from airflow_outamation.claims.records import (
    ATTEMPTS_DIR,
    BATCHES_DIR,
    CLAIMS_DIR,
    COMPLETED_DIR,
    LEASES_DIR,
    PLAN_SUFFIX,
    REJECTED_DIR,
    SENT_DIR,
    claims_folder,
    listdir,
    manifest_path,
    present,
    read_json,
    read_json_many,
    record_dir,
    record_path,
    status_error,
    write_json_once,
)
from airflow_outamation.sftp_pipelining import pipelined_removes

#: How many folders below a project's folder the in-progress folders of subfolder runs are looked for.
SUBFOLDER_DEPTH = 3
#: A claim's manifest (not its placement, purge or returned-file records, nor a temporary file).
_MANIFEST_NAME = re.compile(r"(?!.*\.(?:purging|returned\.\d+)\.json$)[^/]+\.json")


def claim_folders(sftp: paramiko.SFTPClient, in_progress_root: str) -> list[str]:
    """
    The dated claim folders under ``in_progress_root`` (``<base>/<in_progress>``), sorted; none when missing.

    Every folder is one, whatever its name (a date format may start with a dot).

    :param in_progress_root: the project's in-progress folder
    """
    return sorted(
        posixpath.join(in_progress_root, name)
        for name, entry in present(sftp, in_progress_root).items()
        if name != CLAIMS_DIR and stat.S_ISDIR(entry.st_mode or 0)
    )


def project_claim_folders(
    sftp: paramiko.SFTPClient,
    base_path: str,
    in_progress_dir: str = "in_progress",
    skip: Iterable[str] = (),
    depth: int = SUBFOLDER_DEPTH,
) -> list[str]:
    """
    Every claim folder of a project: its own dated in-progress folders, and those of subfolder runs.

    A run for a subfolder (``base_path: <project>/east``) claims into
    ``<project>/east/<in_progress_dir>/<date>``; such folders are found up to ``depth`` folders
    below ``base_path``. Folders named in ``skip`` (the processed and rejected folders, which hold
    every finished file) and hidden folders are not entered; nor are the in-progress folders beyond
    their date folders.

    :param base_path: the project's folder
    :param skip: names of folders not to enter
    """
    first = in_progress_dir.strip("/").split("/", 1)[0]
    skipped = {name.strip("/").split("/", 1)[0] for name in skip} | {first}
    found = claim_folders(sftp, posixpath.join(base_path, in_progress_dir))
    level = [base_path]
    for _ in range(depth):
        below = []
        for folder in level:
            for name, entry in present(sftp, folder).items():
                if stat.S_ISDIR(entry.st_mode or 0) and not name.startswith(".") and name not in skipped:
                    below.append(posixpath.join(folder, name))
        for folder in below:
            found += claim_folders(sftp, posixpath.join(folder, in_progress_dir))
        level = below
    return sorted(found)


def purge_finished(
    sftp: paramiko.SFTPClient, claim_dir: str, max_age: float, now: float, completion: str = "keep"
) -> list[str]:
    """
    Remove the records of the claims in ``claim_dir`` that are finished and older than ``max_age`` seconds.

    A claim is finished when each of its files has a receipt or a rejected record and, unless
    ``completion`` is ``keep``, every receipt of its files a completed record; its manifest must be
    older than ``max_age``. A record belongs to a claim when it lists one of the claim's files by
    its claim identity (records written by 0.3: by path, size and mtime), never by path alone: a
    newer claim's file under a freed name keeps its records. The claim's batch records go first
    (nothing is resent), then receipts, rejected, completed and attempt records, placement record
    and manifest. A ``<id>.purging.json`` marker lets a repeat finish a purge a crash interrupted.
    Returns the purged manifest ids.

    :param max_age: seconds since the manifest was written
    :param now: the current time (epoch seconds)
    :param completion: the project's completion strategy
    """
    folder = claims_folder(claim_dir)
    entries = present(sftp, folder)
    kinds = (BATCHES_DIR, SENT_DIR, REJECTED_DIR, COMPLETED_DIR)
    keys = {kind: record_keys(sftp, claim_dir, kind) for kind in kinds}
    per_try = {kind: listdir(sftp, record_dir(claim_dir, kind)) for kind in (ATTEMPTS_DIR, LEASES_DIR)}
    purged = []
    for name, entry in sorted(entries.items()):
        if not _MANIFEST_NAME.fullmatch(name) or name.endswith(".placed.json"):
            continue
        manifest_id = name.removesuffix(".json")
        purging = f"{manifest_id}.purging.json" in entries
        if not purging and now - (entry.st_mtime or now) < max_age:
            continue
        claimed = [] if purging else [claimed_keys(f) for f in claim_files(sftp, [], claim_dir, manifest_id)]
        own = set().union(*claimed)
        mine = {kind: {i for i, listed in keys[kind].items() if listed & own} for kind in kinds}
        done = set().union(*(keys[kind][i] for kind in (SENT_DIR, REJECTED_DIR) for i in mine[kind]))
        uncompleted = mine[SENT_DIR] - mine[COMPLETED_DIR] if completion != "keep" else set()
        if not purging and (any(not item & done for item in claimed) or uncompleted):
            continue
        marker = posixpath.join(folder, f"{manifest_id}.purging.json")
        write_json_once(
            sftp, marker, {"manifest_id": manifest_id, "batches": sorted(set().union(*mine.values()))}
        )
        owned = set((read_json(sftp, marker) or {}).get("batches", []))
        batch_records = [
            record_path(claim_dir, BATCHES_DIR, i) for i in sorted(owned & set(keys[BATCHES_DIR]))
        ]
        _remove(sftp, [path for record in batch_records for path in (record, f"{record}{PLAN_SUFFIX}")])
        others = [  # once no batch record is left, nothing of the claim is resent: the rest in one step
            path
            for kind in kinds[1:]
            for message_id in sorted(owned & set(keys[kind]))
            for path in (
                record_path(claim_dir, kind, message_id),
                f"{record_path(claim_dir, kind, message_id)}{PLAN_SUFFIX}",
            )
        ]
        others += [
            posixpath.join(record_dir(claim_dir, kind), name)
            for kind in (ATTEMPTS_DIR, LEASES_DIR)
            for name in sorted(per_try[kind])
            if name.split(".", 1)[0] in owned
        ]
        others += [
            posixpath.join(folder, other)
            for other in sorted(entries)
            if other.startswith(f"{manifest_id}.returned.") or other == f"{manifest_id}.placed.json"
        ]
        _remove(sftp, others)
        sftp.remove(manifest_path(claim_dir, manifest_id))
        sftp.remove(marker)
        purged.append(manifest_id)
    for name in sorted(entries):  # a purge a crash cut short after removing the manifest
        if name.endswith(".purging.json") and f"{name.removesuffix('.purging.json')}.json" not in entries:
            sftp.remove(posixpath.join(folder, name))
    return purged


def _remove(sftp: paramiko.SFTPClient, paths: list[str]) -> None:
    """Remove files in one pipelined step; one already gone is fine (a repeat of a cut-short purge)."""
    for path, status in zip(paths, pipelined_removes(sftp, paths), strict=True):
        if status not in (SFTP_OK, SFTP_NO_SUCH_FILE):
            raise status_error(status, f"removing {path}")


def folder_status(sftp: paramiko.SFTPClient, claim_dir: str) -> dict[str, int]:
    """
    How many files of ``claim_dir`` are claimed, sent, unsent, rejected and completed (read only).

    ``claimed`` counts the files the claims placed there (a file returned to the input folder
    excluded); ``sent`` those a receipt lists; ``rejected`` and ``completed`` those moved or
    deleted by :func:`relocate`; ``unsent`` the claimed ones neither sent nor rejected. Files are
    counted by claim identity: two claims of one name are two files.
    """
    entries = listdir(sftp, claims_folder(claim_dir))
    placed = read_json_many(
        sftp,
        [posixpath.join(claims_folder(claim_dir), name) for name in entries if name.endswith(".placed.json")],
    )
    claimed = 0
    for path, record in placed.items():
        placements, _ = load_placements(record or {})
        manifest_id = posixpath.basename(path).removesuffix(".placed.json")
        claimed += len(placements) - sum(
            1 for other in entries if other.startswith(f"{manifest_id}.returned.")
        )
    counts = {
        kind: len(set().union(*record_keys(sftp, claim_dir, kind).values()))
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
        for name, entry in present(sftp, posixpath.join(base_path, source_dir)).items()
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
