"""
The ingestion status page's FastAPI app (mounted in the API server by the plugin) and its HTML.

``/status`` shows one row per project (files waiting, claimed today, sent, unsent, rejected, last
run and its error, a link to the DAG); ``/status.json`` gives the same rows as JSON. Both need an
Airflow login (the UI's cookie or an API token) and show only the projects whose DAG the user may
read; a browser without a login is sent to the login page. A projects file that cannot be read
(caught mid-edit) is shown as an error on the page and in the JSON's ``error``, not as a failure.
"""

import html
from typing import Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep
from airflow.configuration import conf
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException

from airflow_outamation.alerts.page import alerts_section
from airflow_outamation.ingestion_status import STATUS_DAYS, ProjectRow, dag_id_of, placeholder_dag_id
from airflow_outamation.plugins.status_data import project_rows, projects_file, read_projects
from airflow_outamation.plugins.status_plugin import ui_path

#: Seconds the page waits for the SFTP servers (``[outamation] status_page_timeout``).
DEFAULT_TIMEOUT = 10.0
COLUMNS = ("Project", "Waiting in input", "Claimed today", "Sent", "Unsent", "Rejected", "Last run", "Error")


def _cell(value: Any) -> str:
    return "<td></td>" if value is None else f"<td>{html.escape(str(value))}</td>"


def render_row(row: ProjectRow) -> str:
    """One ``<tr>``: counts, last run state with a failure's task and reason, and any read error."""
    run = row.last_run
    state = "never ran" if run is None else run.state
    failure = ""
    if run is not None and run.failed_task is not None:
        failure = f"{run.failed_task}: {run.error or 'see its log'}"
    counts = (row.waiting, row.claimed_today, row.sent, row.unsent, row.rejected)
    return (
        f'<tr data-project="{html.escape(row.project_id)}">'
        f'<td><a target="_top" href="{html.escape(row.dag_url)}">{html.escape(row.project_id)}</a></td>'
        + "".join(_cell(value) for value in counts)
        + f'<td class="state {html.escape(state)}">{html.escape(state)}</td>'
        + _cell(" ".join(part for part in (failure, row.error or "") if part) or None)
        + "</tr>"
    )


def render_page(rows: list[ProjectRow], timeout: float, error: str | None = None) -> str:
    """The whole page; ``error`` (the projects file cannot be read) is shown above the table."""
    head = "".join(f"<th>{name}</th>" for name in COLUMNS)
    problem = f'<p class="error" id="error">{html.escape(error)}</p>' if error else ""
    empty = f'<tr><td colspan="{len(COLUMNS)}">No project</td></tr>'
    body = "".join(render_row(row) for row in rows) or empty
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Outamation ingestion status</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1rem; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ border: 1px solid #ccc; padding: .3rem .6rem; }}
th {{ background: #f3f3f3; text-align: left; }} td {{ vertical-align: top; }}
td.failed {{ color: #b00020; font-weight: bold; }} td.success {{ color: #1b7a2f; }}
td:last-child {{ max-width: 40rem; }} p {{ color: #555; }} p.error {{ color: #b00020; font-weight: bold; }}
</style></head><body>
<h1>Outamation ingestion status</h1>
{problem}
<table id="projects"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<p>Sent, unsent and rejected count the claim folders of the last {STATUS_DAYS} days. Each project's
SFTP folders are read when the page loads, at most {timeout:g} s; a server that does not answer in
time shows an error in its row.</p>
</body></html>"""


def dag_page(dag_id: str) -> str:
    """A DAG's page in the UI."""
    return ui_path(f"/dags/{dag_id}")


def rows_for(user: BaseUser, session: Session) -> tuple[list[ProjectRow], float, str | None]:
    """
    The rows of the projects whose DAG ``user`` may read, the SFTP timeout they were read with, and
    why there are none when the projects file cannot be read (caught mid-edit, say).
    """
    timeout = conf.getfloat("outamation", "status_page_timeout", fallback=DEFAULT_TIMEOUT)
    try:
        projects, invalid = read_projects(projects_file(conf.get("core", "dags_folder")))
    except ValueError as exc:
        return [], timeout, str(exc)
    readable = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    projects = [p for p in projects if dag_id_of(p.project_id) in readable]
    invalid = [e for e in invalid if placeholder_dag_id(e.project_id, e.index) in readable]
    return project_rows(session, projects, invalid, dag_page, timeout), timeout, None


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
        rows, timeout, error = rows_for(user, session)
        alerts = alerts_section(session, [row.project_id for row in rows])
        return HTMLResponse(render_page(rows, timeout, error).replace("</body>", f"{alerts}</body>"))

    @app.get("/status.json")
    def status_json(session: SessionDep, user: GetUserDep) -> dict[str, Any]:
        """The page's rows as JSON (for monitoring and tests); ``error``: why the projects file is unread."""
        rows, timeout, error = rows_for(user, session)
        return {
            "rows": [row.to_dict() for row in rows],
            "timeout": timeout,
            "days": STATUS_DAYS,
            "error": error,
        }

    return app
