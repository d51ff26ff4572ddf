"""Names as the server sends them: escaped for logs, carried through XCom, given a UTF-8 name."""

from __future__ import annotations

import json

import pytest

from airflow_outamation.claims.names import NAME_MAX, utf8_name, with_suffix
from airflow_outamation.name_text import path_fields, path_of, printable
from airflow_outamation.readiness import RemoteFile

LATIN1 = b"/in/M\xfcller.pdf".decode("utf-8", "surrogateescape")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("plain é.pdf", "plain é.pdf"),
        ("a\nb\r\t.pdf", "a\\nb\\r\\t.pdf"),
        ("\x1b[31mred\x7f\x85.pdf", "\\x1b[31mred\\x7f\\x85.pdf"),
        (LATIN1, "/in/M\\xfcller.pdf"),
        ("lone \ud800", "lone \\ud800"),
    ],
)
def test_printable_escapes_controls_and_undecodable_bytes(name: str, shown: str) -> None:
    assert printable(name) == shown


def test_a_path_that_is_not_utf8_travels_through_json_and_back() -> None:
    file = RemoteFile(path=LATIN1, size=3, mtime=1.0)

    carried = json.loads(json.dumps(file.to_dict(), ensure_ascii=False).encode("utf-8"))

    assert carried["filename"] == "M\\xfcller.pdf"
    assert RemoteFile.from_dict(carried) == file
    assert path_of(carried) == LATIN1
    assert path_fields("/in/ok.pdf") == {"path": "/in/ok.pdf", "filename": "ok.pdf"}


def test_utf8_name_decodes_only_names_that_are_not_utf8() -> None:
    assert utf8_name("Müller.pdf") == "Müller.pdf"
    assert utf8_name(b"M\xfcller.pdf".decode("utf-8", "surrogateescape")) == "Müller.pdf"
    assert utf8_name(b"\x81.pdf".decode("utf-8", "surrogateescape")) == "\x81.pdf"  # undefined in cp1252
    long = (b"\xe9" * 250 + b".pdf").decode("utf-8", "surrogateescape")
    assert len(utf8_name(long).encode()) <= NAME_MAX
    assert utf8_name(long).endswith("é.pdf")


def test_with_suffix_cuts_between_characters_of_any_name() -> None:
    assert len(with_suffix("é" * 200 + ".pdf", " (1)").encode()) == 254
    undecodable = with_suffix(("a\udcfc" * 200) + ".pdf", " (1)")
    assert len(undecodable.encode("utf-8", "surrogateescape")) == NAME_MAX
    assert undecodable.endswith(" (1).pdf")
