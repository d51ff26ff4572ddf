"""
Many SFTP requests in flight at once, so that N renames or N small writes cost a few round trips, not N.

paramiko waits for each answer of its public methods; its prefetching reads are built on its request
pipelining (``_async_request`` / ``_read_response``), which this module uses for other requests too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

import paramiko
from paramiko.message import Message
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_HANDLE,
    CMD_NAME,
    CMD_OPEN,
    CMD_OPENDIR,
    CMD_READ,
    CMD_READDIR,
    CMD_REMOVE,
    CMD_RENAME,
    CMD_STATUS,
    CMD_WRITE,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_READ,
    SFTP_FLAG_TRUNC,
    SFTP_FLAG_WRITE,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    int64,
)

#: SFTP requests kept in flight at once (a request is ~100 bytes: far within the SSH window).
PIPELINE_DEPTH = 256
#: Directory reads sent at once while listing (OpenSSH answers up to 100 names to each).
READDIR_BURST = 8
#: Bytes of one write request (OpenSSH's sftp-server takes up to 256 KiB).
WRITE_CHUNK = 32 * 1024
#: Bytes asked for by one read request; a record that fills it is read on in further rounds.
READ_CHUNK = 64 * 1024


class _Answers:
    """Collects the answers to pipelined requests (paramiko hands them to ``_async_response``)."""

    def __init__(self) -> None:
        self.by_number: dict[int, tuple[int, Message]] = {}

    def _async_response(self, t: int, msg: Message, num: int) -> None:
        self.by_number[num] = (t, msg)


def pipelined(
    sftp: paramiko.SFTPClient, requests: Sequence[tuple[int, tuple[Any, ...]]]
) -> list[tuple[int, Message]]:
    """
    Send ``requests`` (SFTP request type, arguments) with up to ``PIPELINE_DEPTH`` in flight.

    :return: each request's answer (SFTP answer type, message positioned after the request id), in order
    """
    answers = _Answers()
    numbers: list[int] = []
    for kind, args in requests:
        while len(numbers) - len(answers.by_number) >= PIPELINE_DEPTH:
            sftp._read_response()  # type: ignore[attr-defined]
        numbers.append(sftp._async_request(answers, kind, *args))  # type: ignore[attr-defined]
    while len(answers.by_number) < len(numbers):
        sftp._read_response()  # type: ignore[attr-defined]
    return [answers.by_number[number] for number in numbers]


def status_of(answer: tuple[int, Message]) -> int:
    """The SFTP status code of an answer (-1 for an answer that is not a status)."""
    kind, msg = answer
    return msg.get_int() if kind == CMD_STATUS else -1


def pipelined_renames(sftp: paramiko.SFTPClient, moves: Sequence[tuple[str, str]]) -> list[int]:
    """
    Rename many paths, pipelined; return each SFTP status code.

    Plain SFTP rename: whether an existing target is refused or replaced is the server's choice
    (see :func:`~airflow_outamation.claims.renames.renames_without_replacing`).
    """
    path = sftp._adjust_cwd  # type: ignore[attr-defined]
    return [
        status_of(a) for a in pipelined(sftp, [(CMD_RENAME, (path(old), path(new))) for old, new in moves])
    ]


def pipelined_removes(sftp: paramiko.SFTPClient, paths: Sequence[str]) -> list[int]:
    """Remove many files, pipelined; return each SFTP status code (``SFTP_NO_SUCH_FILE`` for one gone)."""
    path = sftp._adjust_cwd  # type: ignore[attr-defined]
    return [status_of(a) for a in pipelined(sftp, [(CMD_REMOVE, (path(p),)) for p in paths])]


def pipelined_writes(sftp: paramiko.SFTPClient, contents: Mapping[str, bytes]) -> dict[str, int]:
    """
    Create (or truncate) and write many small files: three pipelined steps (open, write, close) in all.

    :param contents: each file's path and bytes
    :return: each path's SFTP status: ``SFTP_OK``, or the first failure of its open, write or close
    """
    paths = list(contents)
    flags = SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_TRUNC
    opened = pipelined(
        sftp,
        [(CMD_OPEN, (sftp._adjust_cwd(p), flags, paramiko.SFTPAttributes())) for p in paths],  # type: ignore[attr-defined]
    )
    status: dict[str, int] = {}
    handles: dict[str, bytes] = {}
    for path, (kind, msg) in zip(paths, opened, strict=True):
        if kind == CMD_HANDLE:
            handles[path] = msg.get_binary()
        else:
            status[path] = status_of((kind, msg))
    writes = [
        (path, (CMD_WRITE, (handles[path], int64(offset), contents[path][offset : offset + WRITE_CHUNK])))
        for path in handles
        for offset in range(0, max(len(contents[path]), 1), WRITE_CHUNK)
    ]
    for (path, _), answer in zip(writes, pipelined(sftp, [request for _, request in writes]), strict=True):
        if status_of(answer) != SFTP_OK:
            status.setdefault(path, status_of(answer))
    closed = pipelined(sftp, [(CMD_CLOSE, (handles[path],)) for path in handles])
    for path, answer in zip(handles, closed, strict=True):
        status.setdefault(path, status_of(answer))
    return {path: status.get(path, SFTP_OK) for path in paths}


def pipelined_reads(sftp: paramiko.SFTPClient, paths: Sequence[str]) -> dict[str, bytes | None]:
    """
    Read many small files: open, read (until a short chunk) and close, each step pipelined.

    A file that is missing reads as ``None``. A server may in principle answer a read with fewer
    bytes than asked before the end of a file: callers that parse the bytes read such a file again
    the plain way when it does not parse.

    :return: each path's bytes, or ``None`` when it does not exist
    :raises OSError: the server refused to open or read a file (other than "no such file")
    """
    opened = pipelined(
        sftp,
        [(CMD_OPEN, (sftp._adjust_cwd(p), SFTP_FLAG_READ, paramiko.SFTPAttributes())) for p in paths],  # type: ignore[attr-defined]
    )
    contents: dict[str, bytes | None] = {}
    handles: dict[str, bytes] = {}
    for path, (kind, msg) in zip(paths, opened, strict=True):
        if kind == CMD_HANDLE:
            handles[path], contents[path] = msg.get_binary(), b""
        elif status_of((kind, msg)) == SFTP_NO_SUCH_FILE:
            contents[path] = None
        else:
            _close(sftp, handles)
            raise OSError(f"opening {path} failed (SFTP status {status_of((kind, msg))})")
    reading = list(handles)
    while reading:
        answers = pipelined(
            sftp, [(CMD_READ, (handles[p], int64(len(contents[p] or b"")), READ_CHUNK)) for p in reading]
        )
        following = []
        for path, (kind, msg) in zip(reading, answers, strict=True):
            if kind == CMD_DATA:
                chunk = msg.get_binary()
                contents[path] = (contents[path] or b"") + chunk
                if len(chunk) == READ_CHUNK:
                    following.append(path)
        reading = following
    _close(sftp, handles)
    return contents


def _close(sftp: paramiko.SFTPClient, handles: Mapping[str, bytes]) -> None:
    """
    Close handles read from without waiting for the answers: a failed close of a read changes nothing.

    The answers are read, and dropped, by the client's next requests (paramiko's own way of
    closing a file without waiting); this saves a round trip per read or listing.
    """
    for handle in handles.values():
        sftp._async_request(type(None), CMD_CLOSE, handle)  # type: ignore[attr-defined]


def pipelined_listdir_attr(
    sftp: paramiko.SFTPClient, path: str, decode: Callable[[bytes], str]
) -> list[paramiko.SFTPAttributes]:
    """
    List a folder like ``SFTPClient.listdir_attr``, with ``READDIR_BURST`` directory reads in flight.

    paramiko waits for each answer of about 100 names: 1,000 entries cost 13 round trips, here 3 (the
    folder's opening and two bursts; the close is not waited for).
    Sending the next reads before the answers is what OpenSSH's own ``sftp`` client does.

    :param decode: how a name's bytes become ``str``
    :raises FileNotFoundError: and paramiko's other errors, as ``listdir_attr`` raises them
    """
    return pipelined_listdirs_attr(sftp, [path], decode, skip_unreadable=False)[path]


def pipelined_listdirs_attr(
    sftp: paramiko.SFTPClient, paths: Sequence[str], decode: Callable[[bytes], str], skip_unreadable: bool
) -> dict[str, list[paramiko.SFTPAttributes]]:
    """
    List many folders at once: each step (open, reads of ``READDIR_BURST`` per folder, close) pipelined.

    :param paths: the folders
    :param decode: how a name's bytes become ``str``
    :param skip_unreadable: leave out a folder that cannot be opened (gone, not permitted) instead
        of raising paramiko's error for it
    :return: each listed folder's entries (``.`` and ``..`` left out)
    """
    adjust = sftp._adjust_cwd  # type: ignore[attr-defined]
    opened = pipelined(sftp, [(CMD_OPENDIR, (adjust(path),)) for path in paths])
    handles: dict[str, bytes] = {}
    for path, (kind, msg) in zip(paths, opened, strict=True):
        if kind == CMD_HANDLE:
            handles[path] = msg.get_binary()
        elif not skip_unreadable:
            _close(sftp, handles)
            sftp._convert_status(msg)  # type: ignore[attr-defined]
            raise paramiko.SFTPError("Expected handle")
    entries: dict[str, list[paramiko.SFTPAttributes]] = {path: [] for path in handles}
    try:
        reading = list(handles)
        while reading:
            requests = [
                (path, (CMD_READDIR, (handles[path],))) for path in reading for _ in range(READDIR_BURST)
            ]
            ended = set()
            answers = pipelined(sftp, [request for _, request in requests])
            for (path, _), (kind, msg) in zip(requests, answers, strict=True):
                if kind != CMD_NAME:
                    ended.add(path)
                    with suppress(EOFError):  # the end of the folder; another status raises
                        sftp._convert_status(msg)  # type: ignore[attr-defined]
                    continue
                for _ in range(msg.get_int()):
                    name = decode(msg.get_string())
                    longname = msg.get_string().decode(errors="replace")
                    attributes = paramiko.SFTPAttributes._from_msg(msg, name, longname)  # type: ignore[attr-defined]
                    if name not in (".", ".."):
                        entries[path].append(attributes)
            reading = [path for path in reading if path not in ended]
    finally:
        _close(sftp, handles)
    return entries
