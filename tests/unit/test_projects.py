"""A run's base_path is confined to the project's configured folder."""

from __future__ import annotations

import pytest

from airflow_outamation.projects import confine_path


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ("/upload/acme", "/upload/acme"),
        ("/upload/acme/", "/upload/acme"),
        ("/upload/acme/2026/batch", "/upload/acme/2026/batch"),
        ("//upload//acme/./sub", "/upload/acme/sub"),
        ("sub/folder", "/upload/acme/sub/folder"),
        ("./sub", "/upload/acme/sub"),
    ],
)
def test_paths_inside_the_project_folder_are_normalised(requested: str, expected: str) -> None:
    assert confine_path(requested, "/upload/acme") == expected


@pytest.mark.parametrize(
    "requested",
    [
        "/",
        "/upload",
        "/upload/beta",
        "/upload/acme-other",
        "/upload/acme/../beta",
        "../beta",
        "sub/../../beta",
        "/upload/acme/..",
        "",
        "   ",
        "/upload/acme/\nx",
        "/upload/acme/\x00",
    ],
)
def test_paths_that_leave_the_project_folder_are_refused(requested: str) -> None:
    with pytest.raises(ValueError, match="base_path"):
        confine_path(requested, "/upload/acme")


def test_a_root_folder_project_may_use_any_absolute_path_without_dotdot() -> None:
    assert confine_path("/anything/below", "/") == "/anything/below"
    with pytest.raises(ValueError, match=r"\.\."):
        confine_path("/a/../b", "/")
