"""Which ready files an event trigger announces, over successive listings (pure rules)."""

from __future__ import annotations

from airflow_outamation.polling import Announcement, Announcements
from airflow_outamation.readiness import FileState, ReadinessSettings, RemoteFile, StabilityTracker

NOW = 1_800_000_000.0
A = FileState(size=10, mtime=NOW - 60)
B = FileState(size=20, mtime=NOW - 60)


def _files(listing: dict[str, FileState]) -> list[RemoteFile]:
    return [RemoteFile(f"/in/{name}", state.size, state.mtime) for name, state in sorted(listing.items())]


def _names(files: list[RemoteFile]) -> list[str]:
    return [file.filename for file in files]


def test_a_ready_file_is_announced_once_while_it_waits() -> None:
    announcements = Announcements(reannounce_after=600, directory="/in")
    listing = {"a.pdf": A}
    assert _names(announcements.select(listing, _files(listing), NOW)) == ["a.pdf"]
    for later in (5, 10, 300):
        assert announcements.select(listing, _files(listing), NOW + later) == []


def test_a_new_file_is_announced_while_an_earlier_one_still_waits() -> None:
    announcements = Announcements(reannounce_after=600, directory="/in")
    announcements.select({"a.pdf": A}, _files({"a.pdf": A}), NOW)
    both = {"a.pdf": A, "b.pdf": B}
    assert _names(announcements.select(both, _files(both), NOW + 2)) == ["b.pdf"]


def test_a_file_still_waiting_after_reannounce_after_is_announced_again() -> None:
    announcements = Announcements(reannounce_after=600, directory="/in")
    listing = {"a.pdf": A}
    announcements.select(listing, _files(listing), NOW)
    assert announcements.select(listing, _files(listing), NOW + 599) == []
    assert _names(announcements.select(listing, _files(listing), NOW + 600)) == ["a.pdf"]


def test_a_claimed_file_uploaded_again_with_the_same_name_is_announced_again() -> None:
    announcements = Announcements(reannounce_after=600, directory="/in")
    announcements.select({"a.pdf": A}, _files({"a.pdf": A}), NOW)
    assert announcements.select({}, [], NOW + 2) == []
    assert _names(announcements.select({"a.pdf": A}, _files({"a.pdf": A}), NOW + 4)) == ["a.pdf"]


def test_a_replaced_file_is_a_new_identity() -> None:
    announcements = Announcements(reannounce_after=600, directory="/in")
    announcements.select({"a.pdf": A}, _files({"a.pdf": A}), NOW)
    replaced = {"a.pdf": FileState(size=11, mtime=NOW)}
    assert _names(announcements.select(replaced, _files(replaced), NOW + 2)) == ["a.pdf"]


def test_files_a_capped_run_left_behind_are_announced_again_once_claiming_stops() -> None:
    names = [f"d{index}.pdf" for index in range(5)]
    full = {name: A for name in names}
    announcements = Announcements(reannounce_after=600, max_files=2, directory="/in")
    assert _names(announcements.select(full, _files(full), NOW)) == names
    rest = {name: A for name in names[2:]}  # a run claimed its cap of 2
    assert announcements.select(rest, _files(rest), NOW + 2) == []  # maybe still claiming
    assert _names(announcements.select(rest, _files(rest), NOW + 4)) == names[2:]
    assert announcements.select(rest, _files(rest), NOW + 6) == []


def test_files_left_behind_by_an_uncapped_claim_wait_for_their_own_run() -> None:
    announcements = Announcements(reannounce_after=600, max_files=5, directory="/in")
    both = {"a.pdf": A, "b.pdf": B}
    announcements.select(both, _files(both), NOW)
    rest = {"b.pdf": B}  # a run took a.pdf only (b.pdf became ready after it listed)
    assert announcements.select(rest, _files(rest), NOW + 2) == []
    assert announcements.select(rest, _files(rest), NOW + 4) == []


def test_announcements_survive_a_json_round_trip_and_ignore_malformed_entries() -> None:
    announcements = Announcements(reannounce_after=600, directory="/in")
    announcements.select({"a.pdf": A}, _files({"a.pdf": A}), NOW)
    stored = {**announcements.to_json(limit=10), "bad.pdf": ["x"], "short.pdf": [1, 2]}
    assert Announcements.from_json(stored) == {"a.pdf": Announcement(A.size, A.mtime, NOW)}
    assert Announcements.from_json("garbage") == {}
    restored = Announcements(600, directory="/in", announced=Announcements.from_json(stored))
    assert restored.select({"a.pdf": A}, _files({"a.pdf": A}), NOW + 5) == []


def test_stored_announcements_are_capped_to_the_first_names() -> None:
    announcements = Announcements(reannounce_after=600, directory="/in")
    listing = {f"d{index}.pdf": A for index in range(5)}
    announcements.select(listing, _files(listing), NOW)
    assert list(announcements.to_json(limit=2)) == ["d0.pdf", "d1.pdf"]


def test_tracker_compares_only_listings_stability_delay_apart() -> None:
    tracker = StabilityTracker("/in", ReadinessSettings(stability_delay=1.0))
    assert tracker.observe({"a.pdf": A}, started=0.0, finished=0.1, now=NOW) == []
    assert tracker.observe({"a.pdf": A}, started=0.5, finished=0.6, now=NOW) is None
    assert _names(tracker.observe({"a.pdf": A}, started=1.2, finished=1.3, now=NOW) or []) == ["a.pdf"]


def test_tracker_waits_for_a_growing_file() -> None:
    tracker = StabilityTracker("/in", ReadinessSettings(stability_delay=1.0))
    tracker.observe({"a.pdf": FileState(5, NOW - 2)}, 0.0, 0.1, NOW)
    assert tracker.observe({"a.pdf": FileState(9, NOW - 1)}, 1.2, 1.3, NOW) == []
    assert _names(tracker.observe({"a.pdf": FileState(9, NOW - 1)}, 2.4, 2.5, NOW) or []) == ["a.pdf"]


def test_files_in_subfolders_are_announced_by_their_path_under_the_folder_once_each() -> None:
    announcements = Announcements(reannounce_after=600, directory="/in")
    listing = {"a/x.pdf": A, "b/x.pdf": B}
    announced = announcements.select(listing, _files(listing), NOW)
    assert [file.path for file in announced] == ["/in/a/x.pdf", "/in/b/x.pdf"]
    assert announcements.select(listing, _files(listing), NOW + 5) == []
    assert sorted(announcements.to_json(10)) == ["a/x.pdf", "b/x.pdf"]
