"""The text of log lines and metric names: bounded file lists, batch lines, a wait's progress (pure)."""

from __future__ import annotations

from airflow_outamation.batching import batch_label, describe_batch, name_list
from airflow_outamation.metrics import FILES_CLAIMED, per_project_name
from airflow_outamation.readiness import FileState, waiting_files
from airflow_outamation.triggers.sftp import progress_line


def _files(*names: str) -> list[dict[str, str]]:
    return [{"filename": name} for name in names]


def test_name_list_is_bounded() -> None:
    names = [f"f{i:02d}.pdf" for i in range(13)]
    assert name_list(names[:3]) == "f00.pdf, f01.pdf, f02.pdf"
    assert name_list(names[:10]) == ", ".join(names[:10])
    assert name_list(names) == f"{', '.join(names[:10])} … and 3 more"
    assert name_list(names, total=5000) == f"{', '.join(names[:10])} … and 4990 more"  # the first of 5,000
    assert name_list(names, limit=2) == "f00.pdf, f01.pdf … and 11 more"


def test_batch_lines() -> None:
    batch = _files("invoice_006.pdf", "invoice_007.pdf", "invoice_010.pdf")
    assert batch_label(batch) == "invoice_006.pdf … invoice_010.pdf (3)"
    assert batch_label(_files("one.pdf")) == "one.pdf (1)"
    assert describe_batch(_files("one.pdf"), 3, 3) == "batch 3/3: one.pdf (1 file): one.pdf"
    assert describe_batch(batch, 2, 3) == (
        "batch 2/3: invoice_006.pdf … invoice_010.pdf (3 files): "
        "invoice_006.pdf, invoice_007.pdf, invoice_010.pdf"
    )


def test_waiting_files_tells_growing_from_settling() -> None:
    before = {"a.pdf": FileState(10, 1.0), "b.pdf": FileState(10, 1.0), "notes.txt": FileState(5, 1.0)}
    after = {
        "a.pdf": FileState(20, 2.0),  # grew
        "b.pdf": FileState(10, 1.0),  # unchanged, not ready yet
        "c.pdf": FileState(3, 2.0),  # new
        "c.pdf.part": FileState(3, 2.0),  # an upload's temporary name: not a candidate
        "notes.txt": FileState(5, 1.0),  # another pattern
    }
    assert waiting_files(before, after) == (["a.pdf", "c.pdf"], ["b.pdf"])
    assert waiting_files(None, after) == (["a.pdf", "b.pdf", "c.pdf"], [])


def test_progress_line() -> None:
    assert (
        progress_line("*.pdf", "/upload/acme/input", 30, 0)
        == "Waiting for *.pdf in /upload/acme/input every 30 s: 0 ready"
    )
    assert progress_line("*.pdf", "/in", 0.5, 0, ["x.pdf"], ["y.pdf", "z.pdf"]) == (
        "Waiting for *.pdf in /in every 0.5 s: 0 ready, 1 still growing (x.pdf), 2 settling (y.pdf, z.pdf)"
    )


def test_per_project_names_keep_statsd_segments() -> None:
    assert per_project_name(FILES_CLAIMED, "acme") == "outamation.acme.files.claimed"
    assert per_project_name(FILES_CLAIMED, "a.b c") == "outamation.a-db-u000020c.files.claimed"
