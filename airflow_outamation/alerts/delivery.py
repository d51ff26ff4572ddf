"""
Where alert messages go: email through Airflow's SMTP connection (the smtp provider's
:class:`SmtpNotifier`), and a JSON webhook through an ``http`` connection, signed like the document
API calls (:mod:`airflow_outamation.signing`) when the connection has a password (the secret).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import requests
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from airflow.sdk import BaseHook
from airflow.sdk.configuration import conf

from airflow_outamation.alerts.expectations import Condition
from airflow_outamation.exceptions import OutamationError
from airflow_outamation.hooks.document_api import display_url
from airflow_outamation.plugins.status_urls import URL_PREFIX
from airflow_outamation.signing import message_id, sign

#: The SMTP connection used when ``alert_targets`` names none.
DEFAULT_SMTP_CONN_ID = "smtp_default"
#: Seconds a webhook call may take.
WEBHOOK_TIMEOUT = 30
STARTED = "started"
CLEARED = "cleared"


@dataclass(frozen=True)
class AlertMessage:
    """
    One message: a condition of a project started or cleared.

    :param project_id: the project
    :param event: :data:`STARTED` or :data:`CLEARED`
    :param condition: what is (or was) wrong
    :param status_url: the status page
    :param at: when the check saw it (unix seconds)
    :param task_error: the error a failing task of the project left (secrets masked), if any
    """

    project_id: str
    event: str
    condition: Condition
    status_url: str
    at: float
    task_error: str = ""

    @property
    def subject(self) -> str:
        """``[outamation] acme: late: no file arrived by 09:00 (UTC)`` (``CLEARED`` ahead when it cleared)."""
        state = "CLEARED " if self.event == CLEARED else ""
        return f"[outamation] {state}{self.project_id}: {self.condition.kind}: {self.condition.summary}"

    def lines(self) -> list[tuple[str, str]]:
        """The message's labelled lines, in the order shown."""
        lines = [
            ("Project", self.project_id),
            ("Condition", f"{self.condition.kind}: {self.condition.summary}"),
            ("Since", _iso(self.condition.since)),
        ]
        if self.event == CLEARED:
            lines.append(("Cleared", _iso(self.at)))
        lines.append(("Look at", self.condition.look_at))
        if self.task_error:
            lines.append(("Failing task", self.task_error))
        return [*lines, ("Status page", self.status_url)]

    def to_json(self) -> dict[str, Any]:
        """The webhook's body."""
        return {
            "project_id": self.project_id,
            "event": self.event,
            "condition": self.condition.kind,
            "key": self.condition.key,
            "summary": self.condition.summary,
            "since": _iso(self.condition.since),
            "at": _iso(self.at),
            "look_at": self.condition.look_at,
            "task_error": self.task_error,
            "status_url": self.status_url,
        }

    def to_html(self) -> str:
        """The email's body: a small table of :meth:`lines`."""
        rows = "".join(
            f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
            for label, value in self.lines()
        )
        return f"<p>{html.escape(self.subject)}</p><table>{rows}</table>"


def status_page_url() -> str:
    """The status page's address: ``[api] base_url`` and the plugin's path."""
    base = conf.get("api", "base_url", fallback="") or "http://localhost:8080"
    return f"{base.rstrip('/')}{URL_PREFIX}/status"


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="seconds")


def send_email(message: AlertMessage, to: list[str], smtp_conn_id: str = DEFAULT_SMTP_CONN_ID) -> None:
    """
    Email ``message`` through the SMTP connection (its ``from_email`` extra is the sender).

    :param to: the recipients
    :param smtp_conn_id: Airflow ``smtp`` connection
    """
    notifier = SmtpNotifier(
        to=to, subject=message.subject, html_content=message.to_html(), smtp_conn_id=smtp_conn_id
    )
    notifier.notify({})


def send_webhook(message: AlertMessage, http_conn_id: str) -> None:
    """
    POST ``message`` as JSON to the URL of an ``http`` connection, signed when it has a password.

    The connection's host is the URL (or its host, with ``schema``/``port``/``extra.endpoint``).

    :raises OutamationError: the receiver cannot be reached or answered with an error (no URL secrets)
    """
    conn = BaseHook.get_connection(http_conn_id)
    body = json.dumps(message.to_json(), sort_keys=True).encode()
    headers = {"Content-Type": "application/json"}
    if conn.password:
        headers.update(sign(message_id(message.to_json()), body, conn.password))
    url = _url(conn.host or "", conn.schema, conn.port, conn.extra_dejson)
    try:
        response = requests.post(url, data=body, headers=headers, timeout=WEBHOOK_TIMEOUT)
    except requests.RequestException as exc:
        raise OutamationError(f"webhook {display_url(url)} ({http_conn_id}): {type(exc).__name__}") from None
    if response.status_code >= 300:
        raise OutamationError(
            f"webhook {display_url(url)} ({http_conn_id}) answered HTTP {response.status_code}: "
            f"{response.text[:200]}"
        )


def _url(host: str, schema: str | None, port: int | None, extra: Mapping[str, Any]) -> str:
    if "://" in host:
        return host
    base = f"{schema or 'http'}://{host}" + (f":{port}" if port else "")
    return base + "/" + str(extra.get("endpoint", "")).lstrip("/")


def deliver(message: AlertMessage, targets: Mapping[str, Any]) -> None:
    """Send ``message`` to every target of ``alert_targets`` (email, webhook)."""
    if targets.get("email"):
        send_email(message, list(targets["email"]), targets.get("smtp_conn_id", DEFAULT_SMTP_CONN_ID))
    if targets.get("webhook"):
        send_webhook(message, targets["webhook"])
