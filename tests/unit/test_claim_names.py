"""Claim ids and names: injective, bounded, UTF-8 safe (pure, no server)."""

from __future__ import annotations

from airflow_outamation.claims import NAME_MAX, manifest_id_for, unique_name
from airflow_outamation.operators.sftp import manifest_id_for as operators_manifest_id_for

PLACED_SUFFIX = ".placed.json"


def test_distinct_runs_get_distinct_bounded_manifest_ids() -> None:
    colliding = [
        (("ingest", "run:1"), ("ingest", "run_1")),
        (("ingest", "run:1"), ("ingest", "run/1")),
        (("ingest", "ä"), ("ingest", "ö")),
        (("a__b", "c"), ("a", "b__c")),
    ]
    for first, second in colliding:
        assert manifest_id_for(*first) != manifest_id_for(*second)
    long_id = manifest_id_for("ä" * 250, "manual__" + "ö" * 300)
    assert len((long_id + PLACED_SUFFIX).encode()) <= 160
    assert operators_manifest_id_for is manifest_id_for


def test_manifest_id_is_file_name_safe_and_readable() -> None:
    manifest_id = manifest_id_for("ingest", "scheduled__2026-11-25T00:00:00+00:00")
    assert manifest_id.startswith("ingest__scheduled__2026-11-25T00_00_00_00_00__")
    assert manifest_id == manifest_id_for("ingest", "scheduled__2026-11-25T00:00:00+00:00")
    assert set(manifest_id) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def test_collision_names_shorten_the_stem_within_the_limit() -> None:
    name = "é" * 125 + ".pdf"
    renamed = unique_name(name, {name})
    assert renamed.endswith(" (1).pdf")
    assert len(renamed.encode()) <= NAME_MAX
    assert renamed.startswith("é" * 120)
    assert unique_name(name, {name, renamed}).endswith(" (2).pdf")
    assert unique_name("a.pdf", {"a.pdf"}) == "a (1).pdf"
