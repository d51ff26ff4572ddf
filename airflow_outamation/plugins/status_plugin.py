"""
The provider's Airflow plugin: the ingestion status page in the API server, linked from the UI, and
the listener that notes a failed ingestion run's reason on the run (:mod:`.run_notes`).

Registered through the ``airflow.plugins`` entry point, which Airflow 3.3 loads in every process;
the FastAPI app (see :mod:`airflow_outamation.plugins.status_page`) is built in the API server only.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

from airflow_outamation.plugins import run_notes

#: Where the app is mounted in the API server.
URL_PREFIX = "/outamation"
#: Other Airflow processes load plugins too; only the API server serves the app.
RUNNING_ON_API_SERVER = len(sys.argv) > 1 and sys.argv[1] == "api-server"


def ui_path(path: str) -> str:
    """``path`` under the UI's root (the path of ``[api] base_url``)."""
    root = urlsplit(conf.get("api", "base_url", fallback="") or "/").path.rstrip("/")
    return f"{root}{path}"


def _fastapi_apps() -> list[dict[str, object]]:
    if not RUNNING_ON_API_SERVER:
        return []
    from airflow_outamation.plugins.status_page import create_app

    return [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Outamation ingestion status"}]


class OutamationStatusPlugin(AirflowPlugin):
    """The ingestion status page, in the UI's Browse menu, and failed runs' reasons as their notes."""

    name = "outamation_status"
    listeners = [run_notes]
    fastapi_apps = _fastapi_apps()
    external_views = [
        {
            "name": "Ingestion status",
            "href": ui_path(f"{URL_PREFIX}/status"),
            "destination": "nav",
            "category": "browse",
            "url_route": "outamation-status",
        }
    ]
