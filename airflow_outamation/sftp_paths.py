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
