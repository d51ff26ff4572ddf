"""
A real SMTP server on 127.0.0.1 (aiosmtpd, in a thread of its own) that keeps every message it receives.

Airflow connects to it through an ``smtp`` connection (:meth:`SmtpTestServer.connection_json`):
plain SMTP, no TLS, no login.
"""

from __future__ import annotations

import email
import json
import logging
import socket
import threading
from email.message import Message
from typing import Any


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class SmtpTestServer:
    """
    A local SMTP server that keeps what it receives; a context manager.

    :param sender: the ``from_email`` its Airflow connection gives
    """

    def __init__(self, sender: str = "airflow@outamation.test") -> None:
        self.sender = sender
        self.port = _free_port()
        self._lock = threading.Lock()
        self._messages: list[Message] = []
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message (aiosmtpd's handler hook)."""
        with self._lock:
            self._messages.append(email.message_from_bytes(envelope.original_content))
        return "250 Message accepted"

    def start(self) -> SmtpTestServer:
        """Start serving on ``127.0.0.1:port``."""
        from aiosmtpd.controller import Controller

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # one line per SMTP command otherwise
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpTestServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[Message]:
        """Every message received so far, in arrival order."""
        with self._lock:
            return list(self._messages)

    def subjects(self) -> list[str]:
        """The subjects of :attr:`messages`."""
        return [str(message["Subject"]) for message in self.messages]

    def connection_json(self) -> str:
        """An Airflow ``smtp`` connection to this server, as ``AIRFLOW_CONN_<ID>`` holds it."""
        extra = {"from_email": self.sender, "disable_tls": True, "disable_ssl": True, "retry_limit": 1}
        return json.dumps({"conn_type": "smtp", "host": "127.0.0.1", "port": self.port, "extra": extra})
