"""Readiness rules over two listings, one rule at a time."""

from __future__ import annotations

import pytest

from airflow_outamation.readiness import (
    MAX_DEPTH,
    FileState,
    ReadinessSettings,
    RemoteFile,
    add_entries,
    is_temporary_name,
    is_walked_folder,
    marker_of,
    matches_pattern,
    ready_files,
    too_big,
    too_old,
    unannounced,
)

NOW = 1_800_000_000.0
OLD = NOW - 3600


def _ready(before: dict[str, FileState], after: dict[str, FileState], **settings: object) -> list[str]:
    chosen = ReadinessSettings.from_dict(settings)
    return [f.filename for f in ready_files("/in", before, after, now=NOW, settings=chosen)]


def test_unchanged_pdf_is_ready_with_its_path_size_and_mtime() -> None:
    state = FileState(size=10, mtime=OLD)
    assert ready_files("/in", {"a.pdf": state}, {"a.pdf": state}, now=NOW) == [
        RemoteFile(path="/in/a.pdf", size=10, mtime=OLD)
    ]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (FileState(10, OLD), FileState(20, OLD)),
        (FileState(10, OLD), FileState(10, OLD + 1)),
    ],
    ids=["grew", "touched"],
)
def test_changed_file_is_not_ready(before: FileState, after: FileState) -> None:
    assert _ready({"a.pdf": before}, {"a.pdf": after}) == []


def test_file_missing_from_first_listing_is_not_ready() -> None:
    assert _ready({}, {"new.pdf": FileState(10, OLD)}) == []


@pytest.mark.parametrize(
    "name", ["a.pdf.part", "a.pdf.filepart", "a.tmp", "~a.pdf", "a.pdf.crdownload", "A.PDF.PART"]
)
def test_temporary_upload_names_are_not_ready(name: str) -> None:
    assert is_temporary_name(name)
    state = FileState(10, OLD)
    assert _ready({name: state}, {name: state}, pattern="*") == []


def test_dotfiles_directories_and_empty_files_are_not_ready() -> None:
    listing = {
        ".hidden.pdf": FileState(10, OLD),
        "folder.pdf": FileState(4096, OLD, is_regular=False),
        "empty.pdf": FileState(0, OLD),
        "ok.pdf": FileState(1, OLD),
    }
    assert _ready(listing, listing) == ["ok.pdf"]


def test_pattern_is_case_insensitive_and_excludes_other_names() -> None:
    listing = {n: FileState(10, OLD) for n in ("A.PDF", "b.Pdf", "c.txt", "d.pdfx")}
    assert matches_pattern("A.PDF", "*.pdf")
    assert _ready(listing, listing) == ["A.PDF", "b.Pdf"]
    assert _ready(listing, listing, pattern="*.TXT") == ["c.txt"]


def test_min_size_and_min_age() -> None:
    listing = {
        "small.pdf": FileState(5, OLD),
        "fresh.pdf": FileState(50, NOW - 10),
        "good.pdf": FileState(50, OLD),
    }
    assert _ready(listing, listing, min_size=10, min_age=60) == ["good.pdf"]


def test_result_is_sorted_by_name_and_round_trips_through_xcom_dicts() -> None:
    listing = {n: FileState(10, OLD) for n in ("b.pdf", "a (1).pdf", "é.pdf")}
    files = ready_files("/in", listing, listing, now=NOW)
    assert [f.filename for f in files] == ["a (1).pdf", "b.pdf", "é.pdf"]
    assert [RemoteFile.from_dict(f.to_dict()) for f in files] == files
    assert files[0].to_dict() == {"path": "/in/a (1).pdf", "filename": "a (1).pdf", "size": 10, "mtime": OLD}


def test_unannounced_lists_the_candidates_a_watcher_did_not_vouch_for_as_they_are_now() -> None:
    announced = {"a.pdf": FileState(10, 100.0), "b.pdf": FileState(10, 100.0), "gone.pdf": FileState(1, 1.0)}
    listing = {
        "a.pdf": FileState(10, 100.0),  # as announced
        "b.pdf": FileState(12, 101.0),  # grew since
        "c.pdf": FileState(5, 100.0),  # new
        "notes.txt": FileState(5, 100.0),  # no candidate
        "d.pdf.part": FileState(5, 100.0),
    }

    assert unannounced(listing, announced) == ["b.pdf", "c.pdf"]
    assert unannounced({"a.pdf": FileState(10, 100.0)}, announced) == []


def test_settings_round_trip_through_their_dict() -> None:
    settings = ReadinessSettings(pattern="*.PDF", stability_delay=2.5, min_age=3, min_size=10)
    assert settings.serialize() == {"pattern": "*.PDF", "stability_delay": 2.5, "min_age": 3, "min_size": 10}
    assert ReadinessSettings.from_dict(settings.serialize()) == settings
    assert ReadinessSettings.from_dict({}) == ReadinessSettings()


def test_settings_from_rendered_templates_are_numbers() -> None:
    settings = ReadinessSettings.from_dict({"stability_delay": "0.5", "min_size": "7", "min_age": None})
    assert (settings.stability_delay, settings.min_size, settings.min_age) == (0.5, 7, 0.0)


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(TypeError, match="unknown readiness setting"):
        ReadinessSettings.from_dict({"patern": "*.pdf"})


def test_loose_arguments_override_settings() -> None:
    base = ReadinessSettings(pattern="*.txt", min_size=5)
    assert ReadinessSettings.of(base, pattern="*.csv", min_age=None) == ReadinessSettings("*.csv", min_size=5)
    assert ReadinessSettings.of(base.serialize()) == base
    assert ReadinessSettings.of(None, min_size=0) == ReadinessSettings(min_size=0)


def test_regex_is_a_full_match_on_the_name_instead_of_the_pattern() -> None:
    names = ["INV-1.pdf", "INV-22.pdf", "xINV-3.pdf", "INV-4.pdf.bak", "INV-5.PDF", "notes.txt"]
    listing = {name: FileState(10, OLD) for name in names}
    assert _ready(listing, listing, regex=r"INV-\d+\.pdf") == ["INV-1.pdf", "INV-22.pdf"]
    assert _ready(listing, listing, regex=r"(?i)inv-\d+\.pdf") == ["INV-1.pdf", "INV-22.pdf", "INV-5.PDF"]
    assert _ready(listing, listing, regex=r".*\.txt", pattern="*.pdf") == ["notes.txt"]  # regex wins


def test_regex_keeps_the_other_rules() -> None:
    listing = {
        ".INV-1.pdf": FileState(10, OLD),
        "INV-2.pdf.part": FileState(10, OLD),
        "INV-3.pdf": FileState(0, OLD),
    }
    assert _ready(listing, listing, regex=r".*") == []


def test_an_invalid_regex_is_refused() -> None:
    with pytest.raises(ValueError, match="regex"):
        ReadinessSettings(regex="INV-(")


def test_settings_with_a_regex_round_trip() -> None:
    settings = ReadinessSettings(regex=r"INV-\d+\.pdf")
    assert settings.serialize()["regex"] == r"INV-\d+\.pdf"
    assert ReadinessSettings.from_dict(settings.serialize()) == settings


def test_max_age_leaves_older_files_alone() -> None:
    listing = {
        "new.pdf": FileState(10, NOW - 60),
        "old.pdf": FileState(10, NOW - 7200),
        "edge.pdf": FileState(10, NOW - 3600),
    }
    assert _ready(listing, listing, max_age=3600) == ["edge.pdf", "new.pdf"]
    assert _ready(listing, listing) == ["edge.pdf", "new.pdf", "old.pdf"]  # no max_age: every age


def test_too_old_names_the_candidates_older_than_max_age() -> None:
    listing = {
        "old.pdf": FileState(10, NOW - 7200),
        "old.txt": FileState(10, NOW - 7200),
        "new.pdf": FileState(10, NOW),
    }
    assert too_old(listing, ReadinessSettings(max_age=3600), NOW) == ["old.pdf"]
    assert too_old(listing, ReadinessSettings(), NOW) == []


def test_with_a_done_marker_a_file_is_ready_only_beside_a_marker_at_least_as_new() -> None:
    listing = {
        "a.pdf": FileState(10, OLD),
        "a.pdf.done": FileState(0, OLD),
        "b.pdf": FileState(10, OLD),
        "c.pdf": FileState(10, OLD),
        "c.pdf.done": FileState(0, OLD - 60),  # written before c.pdf was (re-)uploaded: stale
    }
    assert _ready(listing, listing, done_marker=".done") == ["a.pdf"]
    assert _ready(listing, listing) == ["a.pdf", "b.pdf", "c.pdf"]


def test_a_done_marker_is_never_a_candidate_itself() -> None:
    listing = {"a.pdf": FileState(10, OLD), "a.pdf.done": FileState(1, OLD)}
    assert _ready(listing, listing, pattern="*", done_marker=".done") == ["a.pdf"]
    assert marker_of("/in/a.pdf", ReadinessSettings(done_marker=".done")) == "/in/a.pdf.done"
    assert marker_of("/in/a.pdf", ReadinessSettings()) is None


def test_max_size_sets_larger_files_apart_and_keeps_the_order() -> None:
    files = [{"filename": name, "size": size} for name, size in (("a.pdf", 10), ("b.pdf", 11), ("c.pdf", 5))]
    assert too_big(files, 10) == ([files[0], files[2]], [files[1]])
    assert too_big(files, None) == (files, [])
    unknown = [{"filename": "old.pdf"}]  # claimed by 0.3: no size recorded, sent as before
    assert too_big(unknown, 1) == (unknown, [])
    assert ReadinessSettings.from_dict({"max_size": "50"}).max_size == 50


def test_in_a_recursive_listing_the_rules_apply_to_the_base_name_and_markers_sit_beside_their_file() -> None:
    state = FileState(size=10, mtime=OLD)
    listing = {
        "a.pdf": state,
        "sub/b.pdf": state,
        "sub/b.pdf.done": state,
        "sub/deeper/c.PDF": state,
        "sub/.hidden.pdf": state,
        "sub/d.pdf.part": state,
        "sub/e.txt": state,
    }
    assert _ready(listing, listing) == ["a.pdf", "b.pdf", "c.PDF"]
    assert _ready(listing, listing, done_marker=".done") == ["b.pdf"]
    assert _ready(listing, listing, regex=r"[bc]\.(pdf|PDF)") == ["b.pdf", "c.PDF"]
    paths = [file.path for file in ready_files("/in", listing, listing, now=NOW)]
    assert paths == ["/in/a.pdf", "/in/sub/b.pdf", "/in/sub/deeper/c.PDF"]


def test_recursive_is_off_by_default_and_round_trips_also_from_rendered_text() -> None:
    assert ReadinessSettings().recursive is False
    assert "recursive" not in ReadinessSettings().serialize()  # as settings serialized before it
    assert ReadinessSettings.from_dict({"pattern": "*.pdf"}).recursive is False  # serialized before 0.5
    on = ReadinessSettings(recursive=True)
    assert ReadinessSettings.from_dict(on.serialize()) == on
    assert ReadinessSettings.from_dict({"recursive": "False"}).recursive is False
    assert ReadinessSettings.from_dict({"recursive": "true"}).recursive is True
    with pytest.raises(ValueError, match="not true or false"):
        ReadinessSettings.from_dict({"recursive": "maybe"})


@pytest.mark.parametrize(
    ("name", "walked"),
    [("sub", True), ("2026 scans", True), (".git", False), (".tmp-upload", False), ("x.part", False)],
)
def test_a_recursive_listing_skips_dot_folders_and_temporary_names(name: str, walked: bool) -> None:
    assert is_walked_folder(name) is walked


def test_level_entries_are_keyed_by_relative_path_and_subfolders_listed_next_within_the_depth() -> None:
    file, folder = FileState(3, OLD), FileState(0, OLD, is_regular=False)
    listing: dict[str, FileState] = {}
    entries = [("x.pdf", file, False), ("sub", folder, True), (".git", folder, True), ("link", folder, False)]
    assert add_entries(listing, "a", entries, depth=1) == ["a/sub"]
    assert listing == {"a/x.pdf": file, "a/sub": folder, "a/.git": folder, "a/link": folder}
    assert add_entries({}, "", entries, depth=MAX_DEPTH) == []  # deep enough: listed, not descended
