"""Rules for project entries that need no I/O: which folder a run may work in."""

from __future__ import annotations

import posixpath


def confine_path(requested: str, root: str) -> str:
    """
    Resolve a run's ``base_path`` inside the project's configured folder ``root``, or refuse it.

    A relative value is a subfolder of ``root``; an absolute one must be ``root`` or lie below it.
    ``..`` segments and control characters are refused outright (not normalised away), so a
    value from the UI's trigger form can narrow a project's folder but never widen it.

    :param requested: the value given for the run (e.g. the ``base_path`` param)
    :param root: the project's configured base path (absolute)
    :return: the normalised absolute path
    :raises ValueError: the value leaves ``root`` or is malformed
    """
    if not posixpath.isabs(root):
        raise ValueError(f"the project's base path {root!r} is not absolute")
    root = _normalised(root)
    text = str(requested).strip()
    if not text:
        raise ValueError("base_path is empty")
    if any(ord(char) < 32 or char == "\x7f" for char in text):
        raise ValueError(f"base_path {text!r} contains control characters")
    if ".." in text.split("/"):
        raise ValueError(f"base_path {text!r} contains '..'; it must stay inside {root}")
    path = _normalised(text if posixpath.isabs(text) else posixpath.join(root, text))
    if path != root and not path.startswith(root.rstrip("/") + "/"):
        raise ValueError(f"base_path {text!r} is outside the project's folder {root}")
    return path


def _normalised(path: str) -> str:
    """``posixpath.normpath`` of an absolute path, with POSIX's leading ``//`` folded to ``/`` too."""
    return posixpath.normpath("/" + path.lstrip("/"))
