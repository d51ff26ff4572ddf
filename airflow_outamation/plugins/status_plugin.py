"""
The provider's Airflow plugin: the ingestion status page in the API server, linked from the UI, and
the listener that notes a failed ingestion run's reason on the run (:mod:`.run_notes`).

Registered as Airflow's own providers register theirs: in the provider info (``plugins``) and
through the ``airflow.plugins`` entry point. Every Airflow process loads plugins; the page's
FastAPI app (see :mod:`airflow_outamation.plugins.status_page`) is built at its first request, which
only the API server receives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_outamation.plugins import run_notes
from airflow_outamation.plugins.status_urls import URL_PREFIX, ui_path

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class StatusApp:
    """An ASGI app that builds the status page's FastAPI app when it is first called."""

    def __init__(self) -> None:
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from airflow_outamation.plugins.status_page import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


class OutamationStatusPlugin(AirflowPlugin):
    """The ingestion status page, in the UI's Browse menu, and failed runs' reasons as their notes."""

    name = "outamation_status"
    listeners = [run_notes]
    fastapi_apps = [{"app": StatusApp(), "url_prefix": URL_PREFIX, "name": "Outamation ingestion status"}]
    external_views = [
        {
            "name": "Ingestion status",
            "href": ui_path(f"{URL_PREFIX}/status"),
            "destination": "nav",
            "category": "browse",
            "url_route": "outamation-status",
        }
    ]
