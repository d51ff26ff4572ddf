"""The status page's alert section: expectations, open alerts and the 14-day chart (SVG, no script)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timezone

from airflow_outamation.alerts.check import project_expectations
from airflow_outamation.alerts.page import chart_svg, project_section
from airflow_outamation.alerts.state import empty_state
from airflow_outamation.projects import Project

SVG = "{http://www.w3.org/2000/svg}"


def test_the_chart_draws_a_bar_per_series_and_day_scaled_to_the_most() -> None:
    svg = ET.fromstring(chart_svg(["d1", "d2"], {"d2": {"claimed": 4, "sent": 2, "rejected": 1}}))
    bars = svg.findall(f"{SVG}rect")
    assert [bar.find(f"{SVG}title").text for bar in bars] == [  # type: ignore[union-attr]
        "d1: 0 claimed",
        "d1: 0 sent",
        "d1: 0 rejected",
        "d2: 4 claimed",
        "d2: 2 sent",
        "d2: 1 rejected",
    ]
    assert [int(bar.get("height", "")) for bar in bars] == [0, 0, 0, 60, 30, 15]
    assert "script" not in chart_svg(["d1"], {})


def test_the_chart_draws_each_days_slowest_wait_as_a_line_scaled_to_the_longest() -> None:
    counts = {"d1": {"slowest_wait": 90.0}, "d2": {"slowest_wait": None}, "d3": {"slowest_wait": 7200.0}}
    svg = ET.fromstring(chart_svg(["d1", "d2", "d3"], counts))
    points = svg.findall(f"{SVG}circle")
    assert [point.find(f"{SVG}title").text for point in points] == [  # type: ignore[union-attr]
        "d1: slowest wait 1 min 30 s",
        "d3: slowest wait 2 h 0 min",
    ]
    assert [float(point.get("cy", "")) for point in points] == [60 - 60 * 90 / 7200, 0]
    (line,) = svg.findall(f"{SVG}polyline")
    assert len(line.get("points", "").split()) == 2  # a day without a sent file has no point
    assert "slowest wait (longest: 2 h 0 min)" in "".join(svg.itertext())


def test_the_chart_without_any_wait_draws_no_line() -> None:
    svg = ET.fromstring(chart_svg(["d1"], {"d1": {"claimed": 1}}))
    assert svg.findall(f"{SVG}circle") == svg.findall(f"{SVG}polyline") == []


def test_a_project_shows_its_expectations_and_open_alerts_escaped() -> None:
    project = Project("acme", "s", "a", "/up", expect_files_by="09:00", max_unsent_age=600)
    since = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc).timestamp()
    late = {"key": "late", "kind": "late", "since": since, "summary": "no file <b>", "look_at": "the input"}
    state = {**empty_state(), "open": {"late": late}, "checked_at": "2026-11-30T09:05:00+00:00"}
    page = project_section(
        project, project_expectations(project), state, datetime(2026, 11, 30, tzinfo=timezone.utc)
    )
    assert "a file by 09:00 (UTC), every day" in page
    assert "within 600 s" in page
    assert "late: no file &lt;b&gt;, since 2026-11-30 09:00 UTC. the input" in page
    assert "11302026</text>" in page  # the chart ends today


def test_a_project_shows_todays_slowest_wait_from_its_state() -> None:
    project = Project("acme", "s", "a", "/up")
    days = {"11302026": {"claimed": 2, "sent": 2, "rejected": 0, "slowest_wait": 75.0}}
    page = project_section(
        project,
        project_expectations(project),
        {**empty_state(), "days": days},
        datetime(2026, 11, 30, tzinfo=timezone.utc),
    )
    assert "<title>11302026: slowest wait 1 min 15 s</title></circle>" in page
