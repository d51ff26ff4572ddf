"""
The ingestion status page's FastAPI app (mounted in the API server by the plugin) and its HTML.

``/status`` shows one row per project (how it runs, whether its folder is watched, files waiting,
claimed today, sent, unsent, rejected, its last run with time and link, the whole error, a link to
the DAG) in the UI's look and reloads itself; ``/status.json`` gives the same rows as JSON. Both need an
Airflow login (the UI's cookie or an API token) and show only the projects whose DAG the user may
read; a browser without a login is sent to the login page. A projects file that cannot be read
(caught mid-edit) is shown as an error on the page and in the JSON's ``error``, not as a failure.
"""

import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, NamedTuple
from urllib.parse import quote

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.configuration import conf
from airflow.models.dag import DagModel
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from airflow_outamation.alerts.page import alerts_section
from airflow_outamation.ingestion_status import STATUS_DAYS, ProjectRow, dag_id_of, placeholder_dag_id
from airflow_outamation.plugins.status_data import COUNTS_TTL, project_rows, projects_file, read_projects
from airflow_outamation.plugins.status_urls import ui_path
from airflow_outamation.projects import EVENT_SCHEDULE, Project

#: Seconds a first read of a project's folders may take before its row shows an error
#: (``[outamation] status_page_timeout``).
DEFAULT_TIMEOUT = 10.0
#: Seconds between the page's own reloads (not while an error is expanded).
REFRESH_SECONDS = 60
#: Longest error shown before it is expanded.
SUMMARY_LIMIT = 120
COLUMNS = (
    "Project",
    "Runs",
    "Watcher",
    "Waiting in input",
    "Too old (left alone)",
    "Claimed today",
    "Sent",
    "Unsent",
    "Rejected",
    "Last run",
    "Error",
)
#: Airflow's UI look: its typeface stack and state colours (Chakra's gray, green, red, cyan, orange).
STYLE = """
body { font-family: Inter, -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif;
  font-size: 14px; margin: 0; padding: 1rem 1.25rem; color: #18181b; background: #fff; }
h1 { font-size: 1.25rem; font-weight: 600; margin: 0 0 .25rem; }
p, .muted { color: #52525b; } p.error { color: #dc2626; font-weight: 600; }
a { color: #0b66c3; text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: separate; border-spacing: 0; width: 100%; border: 1px solid #e4e4e7;
  border-radius: 6px; }
th, td { padding: .4rem .6rem; border-bottom: 1px solid #e4e4e7; text-align: left; vertical-align: top; }
th { position: sticky; top: 0; background: #f4f4f5; font-weight: 600; font-size: 12px; color: #3f3f46; }
tbody tr:nth-child(even) td { background: #fafafa; } tbody tr:hover td { background: #f0f7ff; }
td.count { text-align: right; font-variant-numeric: tabular-nums; }
td.error { max-width: 36rem; white-space: pre-wrap; overflow-wrap: anywhere; }
summary { cursor: pointer; } details[open] .short { display: none; }
.state { display: inline-block; padding: 0 .45rem; border-radius: 9999px; font-size: 12px;
  font-weight: 600; color: #fff; background: #71717a; }
.state.success { background: #16a34a; } .state.failed { background: #dc2626; }
.state.running { background: #0891b2; } .state.queued { background: #78716c; }
.state.never { background: #d4d4d8; color: #3f3f46; }
time { white-space: nowrap; }
"""


class RunMode(NamedTuple):
    """How a project runs, as its row shows it: its schedule and whether a watcher looks at its folder."""

    schedule: str
    watcher: str


def run_mode(project: Project, paused: bool) -> RunMode:
    """The schedule (a cron, ``manual only``, ``when files are ready``) and the event-mode watcher's state."""
    if project.schedule == EVENT_SCHEDULE:
        if paused:
            return RunMode("when files are ready (paused)", "not watching: paused")
        return RunMode("when files are ready", f"watching {project.base_path}/{project.source_dir}")
    schedule = project.schedule or "manual only"
    return RunMode(f"{schedule} (paused)" if paused else schedule, "")


def _cell(value: Any, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f"<td{klass}></td>" if value is None else f"<td{klass}>{html.escape(str(value))}</td>"


def _last_run_cell(row: ProjectRow) -> str:
    """The state as Airflow colours it and when the run was due, linked to the run's page."""
    run = row.last_run
    if run is None:
        return '<td><span class="state never">never ran</span></td>'
    state = f'<span class="state {html.escape(run.state)}">{html.escape(run.state)}</span>'
    when = ""
    if run.started:
        due = datetime.fromisoformat(run.started).astimezone(timezone.utc)
        when = f' <time datetime="{html.escape(run.started)}">{due:%Y-%m-%d %H:%M} UTC</time>'
    href = html.escape(f"{row.dag_url}/runs/{quote(run.run_id, safe='')}")
    return f'<td><a target="_top" href="{href}">{state}{when}</a></td>'


def _error_cell(text: str) -> str:
    """The whole error, wrapped; a long one folded to its beginning (cut at a word) until expanded."""
    if len(text) <= SUMMARY_LIMIT:
        return _cell(text or None, "error")
    summary = text[:SUMMARY_LIMIT].rsplit(" ", 1)[0] + " …"
    return (
        f'<td class="error"><details><summary><span class="short">{html.escape(summary)}</span></summary>'
        f"{html.escape(text)}</details></td>"
    )


def render_row(row: ProjectRow, mode: RunMode | None = None) -> str:
    """One ``<tr>``: mode, counts, last run (time, link, state), a failure's task and reason, read errors."""
    run = row.last_run
    failure = ""
    if run is not None and run.failed_task is not None:
        failure = f"{run.failed_task}: {run.error or 'see its log'}"
    counts = (row.waiting, row.too_old, row.claimed_today, row.sent, row.unsent, row.rejected)
    mode = mode or RunMode("", "")
    return (
        f'<tr data-project="{html.escape(row.project_id)}">'
        f'<td><a target="_top" href="{html.escape(row.dag_url)}">{html.escape(row.project_id)}</a></td>'
        + _cell(mode.schedule)
        + _cell(mode.watcher)
        + "".join(_cell("counting…" if row.counting else value, "count") for value in counts)
        + _last_run_cell(row)
        + _error_cell(" ".join(part for part in (failure, row.error or "") if part))
        + "</tr>"
    )


def render_page(
    rows: list[ProjectRow],
    timeout: float,
    error: str | None = None,
    modes: Mapping[str, RunMode] | None = None,
    sections: Sequence[str] = (),
) -> str:
    """
    The whole page.

    :param rows: one per project
    :param timeout: seconds the SFTP reads were given
    :param error: why the projects file cannot be read, shown above the table
    :param modes: project id -> how it runs (the Runs and Watcher columns)
    :param sections: HTML sections shown above the table (alerts, charts)
    """
    head = "".join(f"<th>{name}</th>" for name in COLUMNS)
    problem = f'<p class="error" id="error">{html.escape(error)}</p>' if error else ""
    empty = f'<tr><td colspan="{len(COLUMNS)}">No project</td></tr>'
    modes = modes or {}
    body = "".join(render_row(row, modes.get(row.project_id)) for row in rows) or empty
    now = datetime.now(timezone.utc)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Outamation ingestion status</title>
<style>{STYLE}</style></head><body>
<h1>Outamation ingestion status</h1>
<p class="muted">Read <time datetime="{now.isoformat()}">{now:%Y-%m-%d %H:%M:%S} UTC</time>; the page
reloads every {REFRESH_SECONDS} s (not while an error is expanded).</p>
{problem}
{"".join(sections)}
<table id="projects"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<p>Sent, unsent and rejected count the claim folders of the last {STATUS_DAYS} days. Each project's
SFTP folders are read in the background: a row shows "counting…" until its first read answers, and
an error when its server does not answer within {timeout:g} s; counts older than {COUNTS_TTL:g} s are
read again in the background when the page loads. An event-mode project's folder is watched only while its DAG
is unpaused.</p>
<script>
setInterval(() => {{
  if (!document.querySelector("details[open]")) location.reload();
}}, {REFRESH_SECONDS * 1000});
</script>
</body></html>"""


def dag_page(dag_id: str) -> str:
    """A DAG's page in the UI."""
    return ui_path(f"/dags/{dag_id}")


def paused_dag_ids(session: Session, dag_ids: Iterable[str]) -> set[str]:
    """Which of these DAGs are paused (an event-mode DAG watches only while unpaused)."""
    query = select(DagModel.dag_id).where(DagModel.dag_id.in_(list(dag_ids)), DagModel.is_paused.is_(True))
    return set(session.scalars(query))


class PageData(NamedTuple):
    """What a page shows: the rows, how each project runs, the SFTP timeout, why there are no rows."""

    rows: list[ProjectRow]
    modes: dict[str, RunMode]
    timeout: float
    error: str | None = None


def rows_for(user: BaseUser, session: Session) -> PageData:
    """
    The rows of the projects whose DAG ``user`` may read, how they run, the SFTP timeout they were
    read with, and why there are none when the projects file cannot be read (caught mid-edit, say).
    """
    timeout = conf.getfloat("outamation", "status_page_timeout", fallback=DEFAULT_TIMEOUT)
    try:
        projects, invalid = read_projects(projects_file(conf.get("core", "dags_folder")))
    except ValueError as exc:
        return PageData([], {}, timeout, str(exc))
    readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    projects = [p for p in projects if dag_id_of(p.project_id) in readable]
    invalid = [e for e in invalid if placeholder_dag_id(e.project_id, e.index) in readable]
    paused = paused_dag_ids(session, [dag_id_of(p.project_id) for p in projects])
    modes = {p.project_id: run_mode(p, dag_id_of(p.project_id) in paused) for p in projects}
    rows = project_rows(session, projects, invalid, dag_page, timeout)
    return PageData(rows, modes, timeout)


def create_app() -> FastAPI:
    """The FastAPI app of the page and its JSON twin."""
    app = FastAPI(title="Outamation ingestion status", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def login_first(request: Request, exc: HTTPException) -> Response:
        """Send a browser without a valid login to the login page; API clients get the error."""
        if exc.status_code in (401, 403) and request.url.path.endswith("/status"):
            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), 303)
        return await http_exception_handler(request, exc)

    @app.get("/status", response_class=HTMLResponse)
    def status_page(session: SessionDep, user: GetUserDep) -> HTMLResponse:
        """The page: one row per project the user may read."""
        data = rows_for(user, session)
        alerts = alerts_section(session, [row.project_id for row in data.rows])
        return HTMLResponse(render_page(data.rows, data.timeout, data.error, data.modes, sections=[alerts]))

    @app.get("/status.json")
    def status_json(session: SessionDep, user: GetUserDep) -> dict[str, Any]:
        """The page's rows as JSON (for monitoring and tests); ``error``: why the projects file is unread."""
        data = rows_for(user, session)
        return {
            "rows": [row.to_dict() for row in data.rows],
            "timeout": data.timeout,
            "days": STATUS_DAYS,
            "error": data.error,
        }

    return app
