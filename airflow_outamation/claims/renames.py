"""
Renames that never replace a file, on every kind of SFTP server.

OpenSSH and ProFTPD refuse a rename onto an existing name ("File already exists"); the Go SFTP
servers (``rclone serve sftp``, the ``pkg/sftp`` family, SFTPGo, many cloud-backed services)
**replace** the target, for plain and ``posix-rename@openssh.com`` renames alike, and accept an
exclusive open (``O_EXCL``) of an existing file by truncating it. What each connection does is
learned once, by a probe inside a claim folder, and kept on the client (:func:`rename_replaces`).

On a server whose rename refuses, a rename is its own lock: two writers can never put two files
under one name. On a server whose rename replaces, every writer into a shared folder holds the
folder's lock (:func:`folder_lock`) while it checks that its target names are free and renames
(:func:`renames_without_replacing`). The lock is a directory renamed to ``<folder>/.lock``: a
rename onto a non-empty directory is refused there too (the probe checks it), so at most one
writer holds it; a holder that died is replaced once its lock expired.
"""

from __future__ import annotations

import contextlib
import json
import logging
import posixpath
import time
import uuid
from collections.abc import Iterator, Sequence

import paramiko
from paramiko.sftp import SFTP_FAILURE

from airflow_outamation.claims.pipelining import pipelined_renames
from airflow_outamation.exceptions import SFTPClaimError

log = logging.getLogger(__name__)

#: The lock of a folder, on servers whose rename replaces: a directory holding ``holder.json``.
LOCK_NAME = ".lock"
#: Seconds after which a lock whose holder did not release it may be taken over.
LOCK_EXPIRY = 600.0
#: Seconds a writer waits for a folder's lock before it gives up.
LOCK_WAIT = 300.0
#: Seconds after which the lock around one record's write (two requests) may be taken over.
RECORD_LOCK_EXPIRY = 30.0
#: The attribute of an SFTP client that caches what its server's rename does.
_REPLACES = "_outamation_rename_replaces"
_HOLDER = "holder.json"


def _write(sftp: paramiko.SFTPClient, path: str, data: bytes) -> None:
    with sftp.open(path, "wb") as handle:
        handle.write(data)


def _remove_tree(sftp: paramiko.SFTPClient, folder: str) -> None:
    """Remove a probe's or a released lock's folder and the one file it may hold."""
    with contextlib.suppress(OSError):
        sftp.remove(posixpath.join(folder, _HOLDER))
    with contextlib.suppress(OSError):
        sftp.rmdir(folder)


def _probe(sftp: paramiko.SFTPClient, folder: str) -> bool:
    """Rename a file onto another in ``folder``: ``True`` when the server replaced it."""
    token = uuid.uuid4().hex[:12]
    first, second = (posixpath.join(folder, f".probe-{token}.{n}") for n in (1, 2))
    _write(sftp, first, b"1")
    _write(sftp, second, b"2")
    try:
        sftp.rename(first, second)
    except OSError:
        replaces = False
    else:
        replaces = True
    for path in (first, second):
        with contextlib.suppress(OSError):
            sftp.remove(path)
    if replaces:
        _check_directory_rename_refuses(sftp, folder, token)
    return replaces


def _check_directory_rename_refuses(sftp: paramiko.SFTPClient, folder: str, token: str) -> None:
    """A server that replaces non-empty directories too offers no lock: no claim is safe on it."""
    first, second = (posixpath.join(folder, f".probe-{token}.d{n}") for n in (1, 2))
    for path in (first, second):
        sftp.mkdir(path)
        _write(sftp, posixpath.join(path, _HOLDER), b"{}")
    try:
        sftp.rename(first, second)
    except OSError:
        return
    finally:
        _remove_tree(sftp, first)
        _remove_tree(sftp, second)
    raise SFTPClaimError(
        f"the SFTP server replaces existing files and non-empty directories on rename (probed in {folder}): "
        "it offers no way to claim files without overwriting another claim's; use another server"
    )


def rename_replaces(sftp: paramiko.SFTPClient, folder: str) -> bool:
    """
    Whether this connection's server replaces an existing file on rename; probed once per connection.

    The probe renames one small file onto another inside ``folder`` (a claim's records folder)
    and removes both; it is logged once per connection.

    :param folder: an existing folder the connection may write in
    :raises SFTPClaimError: the server replaces non-empty directories too (no lock is possible)
    """
    known = getattr(sftp, _REPLACES, None)
    if known is None:
        known = _probe(sftp, folder)
        setattr(sftp, _REPLACES, known)
        log.info(
            "This SFTP server %s an existing file on rename (probed in %s)%s",
            "replaces" if known else "refuses to replace",
            folder,
            ": claims and moves take a folder lock before they rename" if known else "",
        )
    return bool(known)


def _holder(sftp: paramiko.SFTPClient, lock: str) -> dict[str, object] | None:
    try:
        with sftp.open(posixpath.join(lock, _HOLDER), "rb") as handle:
            return dict(json.loads(handle.read()))
    except (OSError, ValueError):
        return None


def _take_over_if_expired(sftp: paramiko.SFTPClient, lock: str, token: str, resumes: str | None) -> bool:
    """Break ``lock`` if it expired or ``resumes`` holds it; ``True`` when it is gone (whoever broke it)."""
    holder = _holder(sftp, lock)
    if holder is None:
        return True  # being released or being taken right now
    if float(str(holder.get("expires", 0))) > time.time() and holder.get("holder") != resumes:
        return False
    broken = f"{lock}-{token}.broken"
    try:
        sftp.rename(lock, broken)
    except OSError:
        return True  # another writer broke it first
    log.warning("Took over the lock %s that %s let expire", lock, holder.get("holder"))
    _remove_tree(sftp, broken)
    return True


@contextlib.contextmanager
def folder_lock(
    sftp: paramiko.SFTPClient,
    folder: str,
    holder: str,
    expiry: float = LOCK_EXPIRY,
    wait: float = LOCK_WAIT,
    resume: bool = False,
) -> Iterator[None]:
    """
    Hold ``folder``'s lock for the block on a server whose rename replaces; on others do nothing.

    :param folder: an existing folder whose names the block chooses and renames into
    :param holder: who holds it, for messages (a claim or batch id)
    :param expiry: seconds after which another writer may take the lock over
    :param wait: seconds to wait for the lock before giving up
    :param resume: take the lock over at once from an earlier holder of the same name (a retried
        claim whose worker died holding it: Airflow runs one try of a task at a time)
    :raises SFTPClaimError: the lock stayed taken for ``wait`` seconds
    """
    if not rename_replaces(sftp, folder):
        yield
        return
    token = uuid.uuid4().hex[:12]
    lock = posixpath.join(folder, LOCK_NAME)
    candidate = f"{lock}-{token}"
    sftp.mkdir(candidate)
    content = {"holder": holder, "token": token, "expires": time.time() + expiry}
    _write(sftp, posixpath.join(candidate, _HOLDER), json.dumps(content).encode())
    deadline, delay = time.monotonic() + wait, 0.02
    try:
        while True:
            try:
                sftp.rename(candidate, lock)
                break
            except OSError:
                if _take_over_if_expired(sftp, lock, token, holder if resume else None):
                    continue
                if time.monotonic() > deadline:
                    raise SFTPClaimError(
                        f"{folder} stayed locked by {(_holder(sftp, lock) or {}).get('holder')} for "
                        f"{wait:.0f} s (the lock {lock} expires {expiry:.0f} s after it was taken)"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
    except BaseException:
        _remove_tree(sftp, candidate)
        raise
    try:
        yield
    finally:
        if (_holder(sftp, lock) or {}).get("token") == token:
            released = f"{lock}-{token}.released"
            sftp.rename(lock, released)
            _remove_tree(sftp, released)


def renames_without_replacing(
    sftp: paramiko.SFTPClient, moves: Sequence[tuple[str, str]], probe_folder: str
) -> list[int]:
    """
    Rename many files, never onto an existing name, pipelined; return each SFTP status code.

    A taken target answers ``SFTP_FAILURE`` on every server: the server refuses it, or, on a
    server whose rename replaces, it is found in a listing of its folder first and not renamed.
    There the caller must hold the lock of every target folder (:func:`folder_lock`).

    :param probe_folder: where to probe the server's rename if this connection has not yet
    """
    if not moves or not rename_replaces(sftp, probe_folder):
        return pipelined_renames(sftp, moves)
    taken: dict[str, set[str]] = {}
    for _, new in moves:
        folder = posixpath.dirname(new)
        if folder not in taken:
            try:
                taken[folder] = set(sftp.listdir(folder))
            except FileNotFoundError:
                taken[folder] = set()
    free = [(old, new) for old, new in moves if posixpath.basename(new) not in taken[posixpath.dirname(new)]]
    statuses = iter(pipelined_renames(sftp, free))
    return [
        SFTP_FAILURE if posixpath.basename(new) in taken[posixpath.dirname(new)] else next(statuses)
        for _, new in moves
    ]
