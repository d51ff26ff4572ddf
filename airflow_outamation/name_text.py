"""
File names as the server sends them, as logs show them and as Airflow carries them (pure, no I/O).

A name travels inside this package as ``str`` decoded with :data:`NAME_ENCODING`: bytes that are
not UTF-8 become lone surrogates and go back to the server as the same bytes. Lone surrogates
cannot leave the package as they are: a log file or Airflow's API (XCom, trigger events) takes
UTF-8 only. Logs get :func:`printable`; XCom dicts get :func:`path_fields`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote_to_bytes

#: How names travel between this package and the server: UTF-8, bytes that do not decode kept as
#: lone surrogates (``b"M\xfc"`` <-> ``"M\udcfc"``), so every name the server sends round-trips.
NAME_ENCODING = ("utf-8", "surrogateescape")
#: The key of an XCom file dict holding a path that is not UTF-8, percent-encoded (``M%FCller.pdf``).
ESCAPED_PATH = "path_escaped"
#: What a log line never holds raw: C0 controls, DEL, C1 controls, lone surrogates (undecodable bytes).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if "\udc80" <= char <= "\udcff":  # a byte that was not UTF-8 (surrogateescape): as that byte
        return f"\\x{ord(char) - 0xDC00:02x}"
    return repr(char)[1:-1]


def printable(text: str) -> str:
    """
    ``text`` with control characters and undecodable bytes escaped (``\\n``, ``\\x1b``, ``\\xfc``).

    Every file name or path a server sent goes through this before it reaches a log line or an
    exception message: a name holding a newline or ANSI codes cannot forge or recolour log lines.
    """
    return _UNPRINTABLE.sub(_escape, text)


def is_utf8(name: str) -> bool:
    """Whether ``name`` came from the server as valid UTF-8 (holds no undecodable byte)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def path_fields(path: str) -> dict[str, str]:
    """
    ``path`` and ``filename`` of an XCom file dict; a path that is not UTF-8 also as :data:`ESCAPED_PATH`.

    Airflow's API carries UTF-8 only: such a path's ``path`` and ``filename`` are :func:`printable`
    (for people), its bytes travel percent-encoded (for :func:`path_of`).
    """
    filename = path.rsplit("/", 1)[-1]
    if is_utf8(path):
        return {"path": path, "filename": filename}
    raw = path.encode(*NAME_ENCODING)
    return {"path": printable(path), "filename": printable(filename), ESCAPED_PATH: quote(raw, safe="/")}


def path_of(item: Mapping[str, Any], key: str = "path") -> str:
    """The path of an XCom file dict as the server has it (see :func:`path_fields`)."""
    escaped = item.get(ESCAPED_PATH)
    if escaped:
        return unquote_to_bytes(str(escaped)).decode(*NAME_ENCODING)
    return str(item[key])
