"""The sensor's bounded summary of ready files, and finding its files again in one listing."""

from __future__ import annotations

from airflow_outamation.readiness import FileState, RemoteFile
from airflow_outamation.ready_summary import files_digest, found_again, is_ready_summary, ready_summary

READINESS = {"pattern": "*.pdf", "stability_delay": 1.2, "min_age": 0, "min_size": 1}


def _summary(listing: dict[str, FileState], count: int) -> dict[str, object]:
    files = [RemoteFile(f"/in/{name}", state.size, state.mtime) for name, state in sorted(listing.items())]
    return {**ready_summary("/in", files[:count], listed=2), "readiness": READINESS}


def test_a_summary_lists_the_first_files_and_counts_them_all() -> None:
    listing = {f"f{i}.pdf": FileState(10, 100.0) for i in range(5)}
    summary = _summary(listing, 5)
    assert summary["file_count"] == 5
    assert [file["filename"] for file in summary["files"]] == ["f0.pdf", "f1.pdf"]  # type: ignore[attr-defined]
    assert is_ready_summary(summary)
    assert not is_ready_summary([{"path": "/in/f0.pdf"}])


def test_the_same_files_unchanged_are_found_again_and_a_change_is_noticed() -> None:
    listing = {f"f{i}.pdf": FileState(10, 100.0) for i in range(5)}
    summary = _summary(listing, 4)
    later = {**listing, "notes.txt": FileState(3, 100.0), "zz.pdf": FileState(10, 200.0)}

    found = found_again(summary, "/in", later, now=1000.0)

    assert [file.filename for file in found or []] == ["f0.pdf", "f1.pdf", "f2.pdf", "f3.pdf"]
    assert found_again(summary, "/in", {**later, "f2.pdf": FileState(11, 100.0)}, now=1000.0) is None
    assert found_again(summary, "/in", {**later, "a_new.pdf": FileState(10, 300.0)}, now=1000.0) is None


def test_the_digest_does_not_depend_on_the_order_of_the_files() -> None:
    files = [RemoteFile("/in/b.pdf", 1, 1.0), RemoteFile("/in/a.pdf", 2, 2.0)]
    assert files_digest(files) == files_digest(files[::-1])
    assert files_digest(files) != files_digest(
        [RemoteFile("/in/b.pdf", 1, 1.0), RemoteFile("/in/a.pdf", 2, 3.0)]
    )
