"""Where the ingestion status page lives in the UI (shared by the plugin and the page's app)."""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow.configuration import conf

#: Where the app is mounted in the API server.
URL_PREFIX = "/outamation"


def ui_path(path: str) -> str:
    """``path`` under the UI's root (the path of ``[api] base_url``)."""
    root = urlsplit(conf.get("api", "base_url", fallback="") or "/").path.rstrip("/")
    return f"{root}{path}"
