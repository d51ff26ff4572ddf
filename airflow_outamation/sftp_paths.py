"""Small path helpers over an open paramiko SFTP client, shared by the hook and the claim."""

from __future__ import annotations

import posixpath

import paramiko


def exists(sftp: paramiko.SFTPClient, path: str) -> bool:
    """Whether ``path`` exists on the server."""
    try:
        sftp.stat(path)
    except FileNotFoundError:
        return False
    return True


def makedirs(sftp: paramiko.SFTPClient, path: str) -> None:
    """Create ``path`` and its missing parents; a directory created meanwhile by someone else is fine."""
    missing = []
    current = path.rstrip("/")
    while current not in ("", "/") and not exists(sftp, current):
        missing.append(current)
        current = posixpath.dirname(current)
    for directory in reversed(missing):
        try:
            sftp.mkdir(directory)
        except OSError:
            if not exists(sftp, directory):
                raise


def resolve(sftp: paramiko.SFTPClient, path: str) -> str:
    """
    ``path`` as the server resolves it (SFTP ``realpath``: symbolic links followed, ``..`` folded).

    Folders that do not exist yet (a claim creates them) are resolved from their nearest existing
    parent; a symbolic link that leads nowhere raises ``FileNotFoundError``.
    """
    missing: list[str] = []
    current = posixpath.normpath(path)
    while True:
        try:
            resolved = sftp.normalize(current)
        except FileNotFoundError:
            parent, name = posixpath.split(current)
            if parent == current or lexists(sftp, current):
                raise  # nothing of the path exists, or a symbolic link leads nowhere
            missing.append(name)
            current = parent
        else:
            return posixpath.join(resolved, *reversed(missing))


def lexists(sftp: paramiko.SFTPClient, path: str) -> bool:
    """Whether ``path`` exists on the server, a symbolic link counting as itself (``lstat``)."""
    try:
        sftp.lstat(path)
    except FileNotFoundError:
        return False
    return True
