"""
Renames that never replace a file, on every kind of SFTP server.

Servers differ on a rename onto an existing name. OpenSSH's ``sftp-server`` refuses it atomically
(it renames a regular file with ``link(2)`` then ``unlink(2)``: "race-free rename of regular
files"). ProFTPD's ``mod_sftp`` and asyncssh's server refuse it too, but check first and rename
after, so two racing renames onto one free name can both pass the check and one file replaces the
other. The Go SFTP servers (``rclone serve sftp``, the ``pkg/sftp`` family, SFTPGo, many
cloud-backed services) **replace** the target, for plain and ``posix-rename@openssh.com`` renames
alike, and accept an exclusive open (``O_EXCL``) of an existing file by truncating it. What each
connection does is learned once, by a probe inside a claim folder and the server's banner, and
kept on the client (:func:`renames_are_exclusive`).

Where renames are exclusive, a rename is its own lock: two writers can never put two files under
one name. Everywhere else every writer into a shared folder holds the folder's lock
(:func:`folder_lock`) while it checks that its target names are free and renames
(:func:`renames_without_replacing`). The lock is a directory renamed to ``<folder>/.lock``: a
rename onto a non-empty directory fails in the kernel (``ENOTEMPTY``) whatever the server checks,
and the probe makes sure the server does not replace directories, so at most one writer holds it;
a holder that died is replaced once its lock expired.
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
from paramiko.sftp import CMD_REMOVE, SFTP_FAILURE, SFTP_OK

from airflow_outamation.exceptions import SFTPClaimError
from airflow_outamation.sftp_pipelining import pipelined, pipelined_renames, pipelined_writes

log = logging.getLogger(__name__)

#: The lock of a folder, on servers whose rename replaces: a directory holding ``holder.json``.
LOCK_NAME = ".lock"
#: Seconds after which a lock whose holder did not release it may be taken over.
LOCK_EXPIRY = 600.0
#: Seconds a writer waits for a folder's lock before it gives up.
LOCK_WAIT = 300.0
#: Seconds after which the lock around one record's write (two requests) may be taken over.
RECORD_LOCK_EXPIRY = 30.0
#: Banners of the servers whose rename refuses an existing target atomically (``link(2)``).
EXCLUSIVE_RENAME_SERVERS = ("SSH-2.0-OpenSSH_",)
#: The attribute of an SFTP client that caches what its server's rename does.
_REPLACES = "_outamation_rename_replaces"
_EXCLUSIVE = "_outamation_renames_exclusive"
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
    """Rename a file onto another in ``folder`` (five round trips); ``True`` when it replaced it."""
    token = uuid.uuid4().hex[:12]
    first, second = (posixpath.join(folder, f".probe-{token}.{n}") for n in (1, 2))
    written = pipelined_writes(sftp, {first: b"1", second: b"2"})
    if any(status != SFTP_OK for status in written.values()):
        _remove(sftp, [first, second])
        raise OSError(f"probing how the server renames in {folder}: it refused to write there")
    replaces = pipelined_renames(sftp, [(first, second)])[0] == SFTP_OK
    _remove(sftp, [first, second])
    return replaces


def _remove(sftp: paramiko.SFTPClient, paths: Sequence[str]) -> None:
    """Remove files, pipelined, whether they exist or not."""
    pipelined(sftp, [(CMD_REMOVE, (sftp._adjust_cwd(path),)) for path in paths])  # type: ignore[attr-defined]


def _check_directory_rename_refuses(sftp: paramiko.SFTPClient, folder: str) -> None:
    """A server that replaces non-empty directories too offers no lock: no claim is safe on it."""
    token = uuid.uuid4().hex[:12]
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
    and removes both.

    :param folder: an existing folder the connection may write in
    """
    known = getattr(sftp, _REPLACES, None)
    if known is None:
        known = _probe(sftp, folder)
        setattr(sftp, _REPLACES, known)
    return bool(known)


def renames_are_exclusive(sftp: paramiko.SFTPClient, folder: str) -> bool:
    """
    Whether a rename onto an existing name is refused atomically on this connection; learned once.

    Only OpenSSH's ``sftp-server`` (:data:`EXCLUSIVE_RENAME_SERVERS`) is known to refuse
    atomically; for any other server writers take folder locks. Logged once per connection.

    :param folder: an existing folder the connection may write in (for the probe)
    :raises SFTPClaimError: the server replaces non-empty directories too (no lock is possible)
    """
    known = getattr(sftp, _EXCLUSIVE, None)
    if known is None:
        replaces = rename_replaces(sftp, folder)
        transport = sftp.get_channel().get_transport()  # type: ignore[union-attr]
        banner = str(transport.remote_version) if transport is not None else ""
        known = not replaces and banner.startswith(EXCLUSIVE_RENAME_SERVERS)
        if not known:
            _check_directory_rename_refuses(sftp, folder)
        setattr(sftp, _EXCLUSIVE, known)
        log.info(
            "SFTP server %s %s an existing file on rename (probed in %s): %s",
            banner,
            "replaces" if replaces else "refuses to replace",
            folder,
            "renames are their own lock" if known else "claims and moves take a folder lock before renaming",
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
    Hold ``folder``'s lock for the block where renames are not exclusive; elsewhere do nothing.

    :param folder: an existing folder whose names the block chooses and renames into
    :param holder: who holds it, for messages (a claim or batch id)
    :param expiry: seconds after which another writer may take the lock over
    :param wait: seconds to wait for the lock before giving up
    :param resume: take the lock over at once from an earlier holder of the same name (a retried
        claim whose worker died holding it: Airflow runs one try of a task at a time)
    :raises SFTPClaimError: the lock stayed taken for ``wait`` seconds
    """
    if renames_are_exclusive(sftp, folder):
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

    A taken target answers ``SFTP_FAILURE`` on every server: the server refuses it atomically, or,
    where renames are not exclusive, it is found in a listing of its folder first and not renamed;
    there the caller must hold the lock of every target folder (:func:`folder_lock`).

    :param probe_folder: where to probe the server's rename if this connection has not yet
    """
    if not moves or renames_are_exclusive(sftp, probe_folder):
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
