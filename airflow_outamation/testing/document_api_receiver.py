"""
A real local document API for tests, the demo and benchmarks: verifies signatures, records requests.

``DocumentApiReceiver`` is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) served from a
background thread. Every POST is checked with :func:`airflow_outamation.signing.verify` and recorded;
a bad signature is answered 401. ``script(...)`` queues the next answers: status codes, or
:class:`Reply` objects with a body, ``Retry-After``, a delay (for client timeouts), a body that
trickles in one byte at a time (for total deadlines), a dropped connection, or a chosen content type
(:func:`deeply_nested_json` makes a body Python's JSON parser cannot read). When the script is
empty a valid request gets 200 with ``{"status": "accepted", ...}`` as ``application/json``. Given a
certificate and key (see :func:`write_self_signed_certificate`), it serves HTTPS. A signed ``GET``
of its verification path (``/verify``) is answered 204 when the signature verifies and 401 when
not, for connection tests (a scripted :class:`Reply` with ``trickle``, when queued, answers instead).
It verifies every signing preset (``scheme``) and can require an API key header (``api_key``) or an
OAuth2 bearer token (``oauth2_client``), which it issues itself from its token path (``/token``,
client credentials grant); :meth:`DocumentApiReceiver.revoke_tokens` makes the issued ones expire
and :meth:`DocumentApiReceiver.script_token_failures` fails the next token requests.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import json
import os
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from airflow_outamation.batching import SHA256
from airflow_outamation.signing import HEX_HMAC, SignatureError, SigningScheme, verify

#: The Basic auth header prefix a client sends its OAuth2 client id and secret under.
_BASIC = "basic "


@dataclass(frozen=True)
class Reply:
    """
    One scripted answer.

    :param status: HTTP status code to answer with
    :param body: response body; a JSON acknowledgement when ``None``
    :param retry_after: value of a ``Retry-After`` header, if any
    :param delay: seconds to wait before answering (longer than the client's timeout: a timeout)
    :param drop: close the connection without answering
    :param content_type: value of the ``Content-Type`` header; no header when ``None``
    :param trickle: when set, send the body chunked, one byte every ``trickle`` seconds (a timeout
        per read never fires on it)
    :param echo_credentials: answer with a body quoting the request's ``Authorization`` and API key
        headers (an API that echoes what it was sent)
    """

    status: int = 200
    body: str | None = None
    retry_after: str | None = None
    delay: float = 0.0
    drop: bool = False
    content_type: str | None = "application/json"
    trickle: float | None = None
    echo_credentials: bool = False


def deeply_nested_json(depth: int = 100_000) -> str:
    """A valid JSON document nested ``depth`` lists deep (Python's ``json`` raises ``RecursionError``)."""
    return "[" * depth + "]" * depth


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the receiver saw it, and whether its signature verified."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    message_id: str | None
    signature_error: str | None = None
    reply: Reply = field(default_factory=Reply)
    received_at: float = field(default_factory=time.monotonic)
    auth_error: str | None = None

    @property
    def valid(self) -> bool:
        """Whether the signature verified and the credentials (API key, bearer token) were accepted."""
        return self.signature_error is None and self.auth_error is None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def new_secret() -> str:
    """A random Standard Webhooks secret (``whsec_<base64 of 24 random bytes>``)."""
    return "whsec_" + base64.b64encode(os.urandom(24)).decode("ascii")


def write_self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """
    Write a self-signed certificate for ``host`` (an IP address) and its key as PEM files.

    :param directory: where to write ``cert.pem`` and ``key.pem``
    :param host: the IP address the certificate is valid for
    :return: the paths of the certificate and of the key
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _sha256(path: Path) -> str | None:
    """A local file's SHA-256 (hex), read in chunks; ``None`` when it cannot be read."""
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        # The TLS handshake runs here, in the request's thread, so a client that rejects the
        # certificate cannot stall the accepting thread.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()
        # Like production servers, answer without Nagle's algorithm: with it, the body sent after
        # the headers waits for the client's delayed ACK (~40 ms) on every kept-alive connection.
        super().setup()
        if self.server.receiver.tcp_nodelay:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet; requests are recorded instead."""

    def do_HEAD(self) -> None:
        self._send(204, b"", None, with_body=False)

    def do_GET(self) -> None:
        """The verification path: 204 when signed with the secret, 401 when not; 404 elsewhere."""
        receiver = self.server.receiver
        if self.path != receiver.verify_path:
            self._send(404, b"", None)
            return
        auth_error = receiver.auth_error(self.headers)
        if auth_error is not None:
            receiver.record_verification(False)
            self._send(401, json.dumps({"error": auth_error}).encode("utf-8"), None)
            return
        try:
            verify(
                dict(self.headers.items()), b"", receiver.secret, receiver.tolerance, scheme=receiver.scheme
            )
        except SignatureError as exc:
            receiver.record_verification(False)
            self._send(401, json.dumps({"error": str(exc)}).encode("utf-8"), None)
            return
        receiver.record_verification(True)
        reply = receiver.next_reply()
        if reply.trickle:
            self._trickle(reply.status, b'{"verified": true}', reply.trickle, reply.content_type)
            return
        self._send(204, b"", None, with_body=False)

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == receiver.token_path and receiver.oauth2_client is not None:
            self._issue_token(body)
            return
        headers = dict(self.headers.items())
        try:
            msg_id: str | None = verify(
                headers, body, receiver.secret, receiver.tolerance, scheme=receiver.scheme
            )
            error = None
        except SignatureError as exc:
            msg_id, error = None, str(exc)
        auth_error = receiver.auth_error(self.headers)
        refusal = auth_error or error
        if refusal is not None:
            reply = Reply(401, json.dumps({"error": refusal}))
        else:
            wrong = receiver.wrong_checksums(body)
            reply = Reply(422, json.dumps({"error": wrong})) if wrong else receiver.next_reply(body)
        receiver.record(
            ReceivedRequest("POST", self.path, headers, body, msg_id, error, reply, auth_error=auth_error)
        )
        if reply.delay and receiver.stopping.wait(reply.delay):
            reply = Reply(drop=True)
        if reply.drop:
            self.close_connection = True
            return
        answer = reply.body
        if reply.echo_credentials:
            names = ("Authorization", receiver.api_key_header)
            answer = json.dumps({"error": "refused", "sent": [self.headers.get(name) for name in names]})
        if answer is None:
            answer = json.dumps({"status": "accepted" if reply.status < 300 else "error", "id": msg_id})
        if reply.trickle:
            self._trickle(reply.status, answer.encode("utf-8"), reply.trickle, reply.content_type)
            return
        self._send(reply.status, answer.encode("utf-8"), reply.retry_after, reply.content_type)

    def _issue_token(self, body: bytes) -> None:
        """The OAuth2 token endpoint: a bearer token for the client credentials grant, else 400/401."""
        receiver = self.server.receiver
        form = {name: values[0] for name, values in parse_qs(body.decode("utf-8", "replace")).items()}
        client = (form.get("client_id"), form.get("client_secret"))
        authorization = self.headers.get("Authorization") or ""
        if authorization.lower().startswith(_BASIC):
            try:
                decoded = base64.b64decode(authorization[len(_BASIC) :], validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            user, _, password = decoded.partition(":")
            client = (user, password)
        failure = receiver.next_token_failure()
        if failure is not None:
            self._send(failure, b'{"error": "temporarily_unavailable"}', None)
        elif form.get("grant_type") != "client_credentials":
            self._send(400, b'{"error": "unsupported_grant_type"}', None)
        elif client != receiver.oauth2_client:
            self._send(401, b'{"error": "invalid_client"}', None)
        else:
            token = receiver.issue_token()
            answer = {"access_token": token, "token_type": "Bearer", "expires_in": receiver.token_lifetime}
            self._send(200, json.dumps(answer).encode("utf-8"), None)

    def _trickle(self, status: int, body: bytes, interval: float, content_type: str | None) -> None:
        """Answer at once, then send ``body`` chunked, one byte every ``interval`` s (until stopped)."""
        stopping = self.server.receiver.stopping
        self.close_connection = True
        try:
            self.send_response(status)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for byte in body:
                if stopping.wait(interval):
                    return
                self.wfile.write(b"1\r\n" + bytes([byte]) + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return

    def _send(
        self,
        status: int,
        body: bytes,
        retry_after: str | None,
        content_type: str | None = "application/json",
        with_body: bool = True,
    ) -> None:
        try:
            self.send_response(status)
            if content_type is not None:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            if with_body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    receiver: DocumentApiReceiver

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept a connection; wrap it in TLS (handshake deferred to the handler) when serving HTTPS."""
        connection, address = super().get_request()
        self.receiver.count_connection()
        context = self.receiver.tls_context
        if context is not None:
            connection = context.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client rejects our certificate or drops the handshake; report the rest."""
        if not isinstance(request, ssl.SSLSocket) or request.version() is not None:
            super().handle_error(request, client_address)


class DocumentApiReceiver:
    """
    A local HTTP document API that verifies and records signed requests; a context manager.

    :param secret: the shared secret; a random ``whsec_`` secret when not given
    :param scheme: the signing scheme requests must use
    :param tolerance: accepted clock difference in seconds
    :param path: the URL path of the endpoint
    :param tcp_nodelay: set ``TCP_NODELAY`` on accepted connections (``False`` shows Nagle's stalls)
    :param tls_cert: PEM certificate to serve HTTPS with (see :func:`write_self_signed_certificate`)
    :param tls_key: PEM private key of ``tls_cert``
    :param verify_path: the URL path whose signed ``GET`` answers 204 or 401 (connection tests)
    :param answer_delay: seconds every batch waits for its default answer (an API that takes time)
    :param api_key: when set, every request must carry it in ``api_key_header``
    :param api_key_header: the header of the API key
    :param oauth2_client: when set, the client id and secret its token path issues bearer tokens to;
        every request must then carry a valid one (``Authorization: Bearer <token>``)
    :param token_lifetime: seconds an issued token is valid (its ``expires_in``)
    :param token_path: the URL path of the token endpoint

    Set :attr:`local_file` (a batch file's ``backup_path`` -> its local file, e.g. a test server's
    ``local_path``) to have each file's ``sha256`` checked: a batch with a missing or wrong one is
    answered 422.
    """

    def __init__(
        self,
        secret: str | None = None,
        scheme: SigningScheme | None = None,
        tolerance: int = 300,
        path: str = "/process",
        tcp_nodelay: bool = True,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        verify_path: str = "/verify",
        answer_delay: float = 0.0,
        api_key: str | None = None,
        api_key_header: str = "X-API-Key",
        oauth2_client: tuple[str, str] | None = None,
        token_lifetime: int = 3600,
        token_path: str = "/token",
    ) -> None:
        self.secret = secret or new_secret()
        self.api_key = api_key
        self.api_key_header = api_key_header
        self.oauth2_client = oauth2_client
        self.token_lifetime = token_lifetime
        self.token_path = token_path
        self.issued_tokens: list[str] = []
        self._valid_tokens: dict[str, float] = {}
        self.answer_delay = answer_delay
        self.verify_path = verify_path
        self.verifications: list[bool] = []
        self.scheme = scheme or SigningScheme()
        self.tolerance = tolerance
        self.path = path
        self.tcp_nodelay = tcp_nodelay
        self.tls_context: ssl.SSLContext | None = None
        if tls_cert is not None:
            self.tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls_context.load_cert_chain(tls_cert, tls_key)
        self.local_file: Callable[[str], Path] | None = None
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._replies: deque[Reply] = deque()
        self._token_failures: deque[int] = deque()
        self._file_replies: dict[str, deque[Reply]] = {}
        self._requests: list[ReceivedRequest] = []
        self._connections = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> DocumentApiReceiver:
        """Listen on a free port of 127.0.0.1 and serve from a background thread."""
        self.stopping.clear()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.receiver = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket; delayed answers are dropped."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> DocumentApiReceiver:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on."""
        if self._server is None:
            raise RuntimeError("the receiver is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The endpoint's URL."""
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{self.path}"

    def script(self, *replies: int | Reply) -> None:
        """Queue the next answers, in order: status codes or :class:`Reply` objects."""
        with self._lock:
            self._replies.extend(Reply(r) if isinstance(r, int) else r for r in replies)

    def script_for_file(self, filename: str, *replies: int | Reply) -> None:
        """Queue answers for the next requests whose batch holds ``filename``, before the general script."""
        with self._lock:
            queue = self._file_replies.setdefault(filename, deque())
            queue.extend(Reply(r) if isinstance(r, int) else r for r in replies)

    def next_reply(self, body: bytes = b"") -> Reply:
        """Take the next scripted answer for a request with ``body``; 200 when nothing is scripted."""
        with self._lock:
            if self._file_replies:
                try:
                    names = [str(item["filename"]) for item in json.loads(body)["files"]]
                except (ValueError, KeyError, TypeError):
                    names = []
                for name in names:
                    if self._file_replies.get(name):
                        return self._file_replies[name].popleft()
            return self._replies.popleft() if self._replies else Reply(delay=self.answer_delay)

    def wrong_checksums(self, body: bytes) -> str | None:
        """Which files of a batch lack their ``sha256`` or carry a wrong one (with :attr:`local_file`)."""
        if self.local_file is None:
            return None
        try:
            files = [(str(f["backup_path"]), f.get(SHA256)) for f in json.loads(body)["files"]]
        except (ValueError, KeyError, TypeError):
            return "the body holds no files"
        wrong = [path for path, sent in files if sent != _sha256(self.local_file(path))]
        return f"missing or wrong sha256 of {', '.join(wrong)}" if wrong else None

    def record(self, request: ReceivedRequest) -> None:
        """Remember a request."""
        with self._lock:
            self._requests.append(request)

    def record_verification(self, valid: bool) -> None:
        """Remember a request of the verification path and whether its signature verified."""
        with self._lock:
            self.verifications.append(valid)

    def count_connection(self) -> None:
        """Count an accepted TCP connection."""
        with self._lock:
            self._connections += 1

    def issue_token(self) -> str:
        """Issue a new bearer token, valid for ``token_lifetime`` seconds."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.issued_tokens.append(token)
            self._valid_tokens[token] = time.monotonic() + self.token_lifetime
        return token

    def script_token_failures(self, *statuses: int) -> None:
        """Answer the next token requests with these statuses (an identity provider that fails)."""
        with self._lock:
            self._token_failures.extend(statuses)

    def next_token_failure(self) -> int | None:
        """The status to fail the next token request with, if one is scripted."""
        with self._lock:
            return self._token_failures.popleft() if self._token_failures else None

    def revoke_tokens(self) -> None:
        """Make every issued token invalid (as if it had expired early): the next request gets 401."""
        with self._lock:
            self._valid_tokens.clear()

    def auth_error(self, headers: Any) -> str | None:
        """Why a request's credentials are refused (missing or wrong API key or token), or ``None``."""
        if self.api_key is not None and headers.get(self.api_key_header) != self.api_key:
            return f"missing or wrong API key in {self.api_key_header}"
        if self.oauth2_client is not None:
            scheme, _, token = (headers.get("Authorization") or "").partition(" ")
            with self._lock:
                expiry = self._valid_tokens.get(token) if scheme.lower() == "bearer" else None
            if expiry is None or expiry < time.monotonic():
                return "missing, unknown or expired bearer token"
        return None

    @property
    def token_url(self) -> str:
        """The token endpoint's URL."""
        scheme = "https" if self.tls_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}{self.token_path}"

    @property
    def connection_count(self) -> int:
        """How many TCP connections were accepted, a failed TLS handshake included."""
        with self._lock:
            return self._connections

    @property
    def accepted_ids(self) -> list[str]:
        """The message ids of the valid requests answered with 2xx, one entry per such answer."""
        with self._lock:
            return [
                r.message_id
                for r in self._requests
                if r.valid and r.message_id and 200 <= r.reply.status < 300 and not r.reply.drop
            ]

    @property
    def requests(self) -> list[ReceivedRequest]:
        """Every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        """Forget recorded requests and pending scripted answers."""
        with self._lock:
            self._requests.clear()
            self._replies.clear()
            self._file_replies.clear()
            self._connections = 0
            self.verifications.clear()
            self.issued_tokens.clear()
            self._valid_tokens.clear()
            self._token_failures.clear()

    def connection_dict(self, **extras: Any) -> dict[str, Any]:
        """
        An Airflow ``outamation_document_api`` connection for this receiver, with ``extras``.

        The HMAC secret is its password (none when it verifies no signature); an API key and OAuth2
        client credentials are extras (``auth``, ``api_key``, ``token_url``, ``client_id``,
        ``client_secret``).
        """
        extra: dict[str, Any] = {"signature_scheme": self.scheme.name}
        if self.scheme.name == HEX_HMAC:
            extra["signature_header"] = self.scheme.signature_header
        if self.api_key is not None:
            extra |= {"auth": "api-key", "api_key": self.api_key, "api_key_header": self.api_key_header}
        if self.oauth2_client is not None:
            client_id, client_secret = self.oauth2_client
            extra |= {
                "auth": "oauth2",
                "token_url": self.token_url,
                "client_id": client_id,
                "client_secret": client_secret,
            }
        connection = {"conn_type": "outamation_document_api", "host": self.url, "extra": extra | extras}
        if self.scheme.signs:
            connection["password"] = self.secret
        return connection

    def connection_json(self, **extras: Any) -> str:
        """:meth:`connection_dict` as the JSON an ``AIRFLOW_CONN_<ID>`` variable holds."""
        return json.dumps(self.connection_dict(**extras))
