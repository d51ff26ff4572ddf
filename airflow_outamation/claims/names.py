"""Names in claim folders: claim ids, unique and shortened file names (pure, no I/O)."""

from __future__ import annotations

import codecs
import hashlib
import posixpath
import re
from typing import Any

from airflow_outamation.name_text import NAME_ENCODING, is_utf8

#: The longest file name, in bytes, the servers take (Linux ``NAME_MAX``).
NAME_MAX = 255
#: A longer "extension" is part of the stem when a name is shortened (``a.<200 bytes>``).
_EXT_MAX = 32
#: Characters of the readable part of a manifest id.
_MANIFEST_PREFIX_MAX = 100
#: What a claim decodes a name that is not UTF-8 with, unless told otherwise (Windows' Western European).
DEFAULT_NAME_ENCODING = "cp1252"
#: The error handler that decodes the bytes an encoding leaves undefined as Latin-1 (cp1252's 0x81 ...).
_LATIN1_FALLBACK = "outamation-latin-1"


def _as_latin1(error: UnicodeError) -> tuple[str, int]:
    """Decode error handler: the undecodable bytes as Latin-1 (each byte one character)."""
    assert isinstance(error, UnicodeDecodeError)
    return error.object[error.start : error.end].decode("latin-1"), error.end


codecs.register_error(_LATIN1_FALLBACK, _as_latin1)


def manifest_id_for(dag_id: str, run_id: str) -> str:
    """
    The claim id of one DAG run: a readable, file-name-safe prefix plus a digest of the exact ids.

    Distinct (dag id, run id) pairs get distinct ids (``run:1``, ``run_1`` and ``run/1`` included)
    and every id is short enough for the claim's file names, whatever the length of the run id.
    """
    dag = dag_id.encode()
    digest = hashlib.sha256(len(dag).to_bytes(8, "big") + dag + run_id.encode()).hexdigest()[:20]
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", f"{dag_id}__{run_id}")[:_MANIFEST_PREFIX_MAX]
    return f"{readable}__{digest}"


def _size(text: str) -> int:
    """Bytes of ``text`` on the server."""
    return len(text.encode(*NAME_ENCODING))


def split_extension(name: str) -> tuple[str, str]:
    """``(stem, ext)``; an "extension" longer than ``_EXT_MAX`` bytes is part of the stem."""
    stem, ext = posixpath.splitext(name)
    return (stem, ext) if _size(ext) <= _EXT_MAX else (name, "")


def with_suffix(name: str, suffix: str) -> str:
    """``stem{suffix}.ext``, the stem cut between characters to stay within ``NAME_MAX`` bytes."""
    stem, ext = split_extension(name)
    budget = max(NAME_MAX - _size(f"{suffix}{ext}"), 0)
    size = 0
    for index, char in enumerate(stem):
        size += _size(char)
        if size > budget:
            stem = stem[:index]
            break
    return f"{stem}{suffix}{ext}"


def utf8_name(name: str, encoding: str = DEFAULT_NAME_ENCODING) -> str:
    """
    ``name`` when it is valid UTF-8; else its bytes decoded with ``encoding`` (within ``NAME_MAX`` bytes).

    The bytes ``encoding`` leaves undefined are decoded as Latin-1, so every name gets a UTF-8 one.

    :param name: a name as received from the server (see :data:`NAME_ENCODING`)
    :param encoding: a Python codec name, e.g. ``cp1252``, ``cp437``, ``shift_jis``
    """
    if is_utf8(name):
        return name
    decoded = name.encode(*NAME_ENCODING).decode(encoding, _LATIN1_FALLBACK)
    return decoded if _size(decoded) <= NAME_MAX else with_suffix(decoded, "")


def unique_name(name: str, taken: set[str]) -> str:
    """``name``, or ``stem (n).ext`` with the smallest ``n`` not in ``taken`` (within ``NAME_MAX`` bytes)."""
    n = 0
    candidate = name
    while candidate in taken:
        n += 1
        candidate = with_suffix(name, f" ({n})")
    return candidate


def own_name(name: str, manifest_id: str) -> str:
    """A name no other claim can choose: the stem carries a digest of this claim's id."""
    token = hashlib.sha256(manifest_id.encode()).hexdigest()[:8]
    return with_suffix(name, f" (claim {token})")


def differences(expected_size: Any, expected_mtime: Any, size: Any, mtime: Any) -> list[str]:
    """How a size and mtime differ from the expected ones (whole seconds; unknown values not compared)."""
    changes = []
    if None not in (expected_size, size) and int(expected_size) != int(size):
        changes.append(f"size {int(expected_size)} -> {int(size)}")
    if None not in (expected_mtime, mtime) and int(float(expected_mtime)) != int(float(mtime)):
        changes.append(f"mtime {int(float(expected_mtime))} -> {int(float(mtime))}")
    return changes
