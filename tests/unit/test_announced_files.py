"""announced_files: what a watcher's events in a run's context say is ready."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from airflow_outamation.assets import announced_files
from airflow_outamation.readiness import FileState


def event(stamp: str, status: str = "ready", directory: str = "/p/input", **payload: Any) -> SimpleNamespace:
    files = payload.pop("files", [])
    body = {"status": status, "directory": directory, "file_count": len(files), "files": files, **payload}
    return SimpleNamespace(extra={"from_trigger": True, "payload": body}, timestamp=stamp)


def file(name: str, size: int, mtime: float = 100.0) -> dict[str, Any]:
    return {"path": f"/p/input/{name}", "filename": name, "size": size, "mtime": mtime}


def test_the_files_of_every_ready_event_of_the_folder_are_announced() -> None:
    events = [
        event("2026-11-26T10:00:01", files=[file("b.pdf", 2)]),
        event("2026-11-26T10:00:00", files=[file("a.pdf", 1)]),
    ]

    assert announced_files(events, "/p/input/") == {
        "a.pdf": FileState(size=1, mtime=100.0),
        "b.pdf": FileState(size=2, mtime=100.0),
    }


def test_a_file_announced_twice_counts_as_in_the_latest_event() -> None:
    later, earlier = (
        event("2026-11-26T10:00:09", files=[file("a.pdf", 9)]),
        event("2026-11-26T10:00:00", files=[file("a.pdf", 1)]),
    )

    assert announced_files([later, earlier], "/p/input") == {"a.pdf": FileState(size=9, mtime=100.0)}


def test_errors_other_folders_and_other_assets_announce_nothing() -> None:
    events = [
        event("1", status="error", message="wrong password"),
        event("2", directory="/q/input", files=[file("a.pdf", 1)]),
        SimpleNamespace(extra={"in_progress": ["/p/in_progress/11262026"]}, timestamp="3"),
        SimpleNamespace(extra={}, timestamp="4"),
    ]

    assert announced_files(events, "/p/input") is None
    assert announced_files([], "/p/input") is None


def test_an_event_listing_only_part_of_its_files_makes_the_run_look_for_itself() -> None:
    partial = event("2", files=[file("a.pdf", 1)], file_count=150)

    assert announced_files([event("1", files=[file("z.pdf", 1)]), partial], "/p/input") is None


def test_files_announced_in_subfolders_are_keyed_by_their_path_under_the_folder() -> None:
    events = [event("1", directory="/p/input/", files=[file("a/x.pdf", 1), file("b/c/x.pdf", 2)])]

    assert announced_files(events, "/p/input") == {
        "a/x.pdf": FileState(size=1, mtime=100.0),
        "b/c/x.pdf": FileState(size=2, mtime=100.0),
    }
