"""
The status page's alert section: per project its expectations, the alerts open now, and a chart of the
last 14 days (files claimed, sent, rejected per day, and the slowest file's wait) drawn on the server as SVG.

Everything comes from the projects file and the alert Variables the ``check_alerts`` tasks write: no
SFTP read, so the section costs the page one database query.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from airflow.configuration import conf
from airflow.models.variable import Variable as VariableModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from airflow_outamation.alerts.check import project_expectations
from airflow_outamation.alerts.expectations import Expectations
from airflow_outamation.alerts.facts import CHART_DAYS
from airflow_outamation.alerts.state import empty_state, variable_key
from airflow_outamation.ingestion_status import status_dates
from airflow_outamation.plugins.status_data import projects_file, read_projects
from airflow_outamation.projects import Project

#: The chart's series: state key, label, colour.
SERIES = (("claimed", "claimed", "#8a8a8a"), ("sent", "sent", "#1b7a2f"), ("rejected", "rejected", "#b00020"))
BAR, GAP, HEIGHT = 5, 6, 60
#: Colour of the slowest-wait line.
WAIT_COLOUR = "#1f5fa8"


def read_states(session: Session, project_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """
    The alert state of each project that has one, from the metadata database.

    :param session: a metadata database session
    :param project_ids: the projects
    """
    keys = {variable_key(project_id): project_id for project_id in project_ids}
    states = {}
    for variable in session.scalars(select(VariableModel).where(VariableModel.key.in_(keys))):
        try:
            value = json.loads(variable.val or "")
        except ValueError:
            continue
        if isinstance(value, dict):
            states[keys[variable.key]] = {**empty_state(), **value}
    return states


def chart_svg(days: Sequence[str], counts: Mapping[str, Mapping[str, Any]]) -> str:
    """
    Bars of claimed, sent and rejected files per day, oldest day left, and a line of each day's slowest
    wait (its own scale); each bar's and point's tooltip gives its value.

    :param days: folder names of the days, oldest first
    :param counts: day -> ``{"claimed", "sent", "rejected", "slowest_wait"}`` (a missing count is 0, a
        missing wait no point)
    """
    group = len(SERIES) * BAR + GAP
    width, top = (
        len(days) * group,
        max([1, *(counts.get(d, {}).get(k, 0) for d in days for k, _, _ in SERIES)]),
    )
    bars = []
    for index, day in enumerate(days):
        for offset, (key, label, colour) in enumerate(SERIES):
            value = counts.get(day, {}).get(key, 0)
            height = round(HEIGHT * value / top)
            x = index * group + offset * BAR
            bars.append(
                f'<rect x="{x}" y="{HEIGHT - height}" width="{BAR - 1}" height="{height}" fill="{colour}">'
                f"<title>{html.escape(day)}: {value} {label}</title></rect>"
            )
    legend = " ".join(f'<tspan fill="{colour}">■ {label}</tspan>' for _, label, colour in SERIES)
    return (
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{HEIGHT + 41}" '
        f'role="img" aria-label="files per day and slowest wait, last {len(days)} days">'
        + "".join(bars)
        + f'<line x1="0" y1="{HEIGHT + 0.5}" x2="{width}" y2="{HEIGHT + 0.5}" stroke="#ccc"/>'
        + _wait_line(days, counts, group)
        + f'<text x="0" y="{HEIGHT + 12}" font-size="10">{html.escape(days[0])}</text>'
        + f'<text x="{width}" y="{HEIGHT + 12}" font-size="10" text-anchor="end">'
        + f"{html.escape(days[-1])}</text>"
        + f'<text x="0" y="{HEIGHT + 25}" font-size="10">{legend} (most: {top})</text></svg>'
    )


def _wait_line(days: Sequence[str], counts: Mapping[str, Mapping[str, Any]], group: int) -> str:
    """Each day's slowest wait as a point over its bars, joined by a line; nothing without a wait."""
    waits = {day: wait for day in days if (wait := counts.get(day, {}).get("slowest_wait")) is not None}
    if not waits:
        return ""
    longest = max(max(waits.values()), 1)
    points = [
        (index * group + len(SERIES) * BAR / 2, HEIGHT - HEIGHT * waits[day] / longest, day)
        for index, day in enumerate(days)
        if day in waits
    ]
    dots = "".join(
        f'<circle cx="{x:g}" cy="{y:g}" r="2" fill="{WAIT_COLOUR}">'
        f"<title>{html.escape(day)}: slowest wait {duration_text(waits[day])}</title></circle>"
        for x, y, day in points
    )
    line = " ".join(f"{x:g},{y:g}" for x, y, _ in points)
    return (
        f'<polyline points="{line}" fill="none" stroke="{WAIT_COLOUR}"/>{dots}'
        f'<text x="0" y="{HEIGHT + 38}" font-size="10"><tspan fill="{WAIT_COLOUR}">'
        f"● slowest wait (longest: {duration_text(longest)})</tspan></text>"
    )


def duration_text(seconds: float) -> str:
    """``42 s``, ``1 min 30 s`` or ``2 h 5 min``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def project_section(
    project: Project, expectations: Expectations, state: Mapping[str, Any], now: datetime
) -> str:
    """One project's expectations, open alerts and chart."""
    expected = "".join(f"<li>{html.escape(line)}</li>" for line in expectations.describe())
    alerts = "".join(
        f'<li class="alert">{html.escape(alert["kind"])}: {html.escape(alert["summary"])}, since '
        f"{datetime.fromtimestamp(alert['since'], timezone.utc):%Y-%m-%d %H:%M} UTC. "
        f"{html.escape(alert.get('look_at', ''))}</li>"
        for alert in sorted(state["open"].values(), key=lambda alert: alert["since"])
    )
    checked = state.get("checked_at") or "never (no run yet)"
    days = list(reversed(status_dates(now, project.timezone, project.date_format, CHART_DAYS)))
    return (
        f'<section class="alerts" data-project="{html.escape(project.project_id)}">'
        f"<h3>{html.escape(project.project_id)}</h3>"
        f"<p>Expected: </p><ul>{expected or '<li>nothing</li>'}</ul>"
        f"<p>Open alerts (checked {html.escape(checked)}):</p><ul>{alerts or '<li>none</li>'}</ul>"
        f"{chart_svg(days, state.get('days', {}))}</section>"
    )


def alerts_section(session: Session, project_ids: Sequence[str]) -> str:
    """
    The page's alert section for the projects shown (those the user may read), or nothing without any.

    :param session: a metadata database session
    :param project_ids: the ``project_id`` of each row on the page
    """
    try:
        projects, _ = read_projects(projects_file(conf.get("core", "dags_folder")))
    except ValueError:
        return ""  # the page already says why the projects file cannot be read
    shown = [p for p in projects if p.project_id in set(project_ids)]
    if not shown:
        return ""
    states = read_states(session, [p.project_id for p in shown])
    now = datetime.now(timezone.utc)
    sections = "".join(
        project_section(p, project_expectations(p), states.get(p.project_id, empty_state()), now)
        for p in shown
    )
    return f'<h2 id="alerts">Expectations and alerts</h2>{sections}'
