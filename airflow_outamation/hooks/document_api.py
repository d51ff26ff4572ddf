"""
DocumentApiHook: signed, retried POSTs of file batches to the Outamation document API.

The connection (type ``outamation_document_api``) holds the endpoint URL in ``host``, the HMAC secret
in ``password`` and, in ``extra``: ``profile_code``, ``signature_scheme`` (``standard-webhooks``,
``hex-hmac``, ``github``, ``stripe``, ``slack`` or ``none``; see :mod:`airflow_outamation.signing`),
``signature_header`` (for ``hex-hmac``), ``auth`` with its settings (``api-key``: ``api_key``,
``api_key_header``; ``oauth2``: ``token_url``, ``client_id``, ``client_secret``, ``scope``; see
:mod:`airflow_outamation.hooks.api_auth`), ``timeout`` (seconds one HTTP exchange may
take in all: connect, headers and body; an answer still arriving then is a retried timeout), ``max_retries``
(retries after the first attempt), ``backoff_initial`` and ``backoff_max`` (seconds), ``ca_bundle``
(a CA certificate file or directory to verify the API's TLS certificate with), ``expected_content_type``
(what a 2xx answer must be to accept a batch; ``application/json`` by default, ``*`` for anything),
``expected_json_keys`` (keys that answer's JSON object must hold) and ``verify_path`` (a path of the
API that checks signatures, for the connection test: a signed ``GET`` there must get a 2xx answer).
The URL is taken from the hook's ``api_url`` argument (a project entry's), else from the connection;
the ``DOC_AI_API_URL`` environment variable, ``SftpService``'s setting, only fills in when neither has one.

Nothing from outside (exception texts, response bodies) reaches a log or an error unscrubbed: the
secret, its ``whsec_`` payload, the API key, the OAuth2 client secret and access tokens, runs of 8 or
more of their characters, and the URL's query and user info are masked
(:mod:`airflow_outamation.redaction`).
"""

from __future__ import annotations

import json
import os
import posixpath
import ssl
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret
from tenacity import RetryCallState, RetryError, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential, wait_random

from airflow_outamation import __version__, metrics
from airflow_outamation.api_answers import ExpectedAnswer
from airflow_outamation.batching import SHA256
from airflow_outamation.exceptions import DocumentApiError, DocumentApiRejectedError
from airflow_outamation.hooks.api_auth import OAUTH2, ApiAuth, BearerToken
from airflow_outamation.hooks.http_deadline import DeadlineAdapter, total_deadline
from airflow_outamation.redaction import Scrubber, secret_variants, url_secrets
from airflow_outamation.signing import STANDARD_WEBHOOKS, SigningScheme, message_id, sign

URL_OVERRIDE_ENV = "DOC_AI_API_URL"
RETRYABLE_STATUSES = frozenset({408, 429})
BODY_EXCERPT_CHARS = 500
#: Requests one hook keeps in flight at most (the size of its HTTP connection pool).
MAX_IN_FLIGHT = 32
#: Seconds one HTTP exchange may take in all, when the connection does not say (extra ``timeout``).
DEFAULT_TIMEOUT = 30.0
#: Retries after a batch's first attempt, when the connection does not say (extra ``max_retries``).
DEFAULT_MAX_RETRIES = 5


class DocumentApiTransientError(DocumentApiError):
    """One attempt failed in a way worth retrying (unreachable, timeout, 408, 429, 5xx)."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class SharedPause:
    """A moment before which no sender of one hook starts a request (set by ``Retry-After``)."""

    def __init__(self) -> None:
        self._until = 0.0
        self._lock = threading.Lock()

    def extend(self, seconds: float) -> None:
        """Hold every sender back for at least ``seconds`` from now."""
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self) -> None:
        """Sleep until the pause is over (at once when there is none)."""
        while (remaining := self._until - time.monotonic()) > 0:
            time.sleep(remaining)


@dataclass(frozen=True)
class DocumentApiSettings:
    """The resolved settings of one document API connection."""

    url: str
    secret: str = field(repr=False)
    scheme: SigningScheme
    profile_code: str | None
    timeout: float
    max_retries: int
    backoff_initial: float
    backoff_max: float
    ca_bundle: str | None = None
    expected_answer: ExpectedAnswer = field(default_factory=ExpectedAnswer)
    verify_path: str | None = None
    auth: ApiAuth = field(default_factory=ApiAuth)

    @property
    def verify(self) -> str | bool:
        """What ``requests`` verifies the API's TLS certificate with: ``ca_bundle``, else its defaults."""
        return self.ca_bundle or True

    @property
    def secrets(self) -> list[str]:
        """Every string never to show: the secret's forms, the credentials, the URL's query and user info."""
        return [
            *secret_variants(self.secret),
            *self.auth.secrets,
            *url_secrets(self.url),
            *url_secrets(sent_url(self.url)),
        ]

    @cached_property
    def scrub(self) -> Scrubber:
        """Mask :attr:`secrets`, and runs of their characters, in text that came from outside."""
        return Scrubber(self.secrets)


@dataclass(frozen=True)
class PreparedBatch:
    """One batch ready to send, any number of times: its message id and exact body."""

    message_id: str
    body: bytes = field(repr=False)
    file_count: int


@dataclass(frozen=True)
class BatchSubmission:
    """What the API answered to one batch."""

    message_id: str
    status_code: int
    attempts: int
    file_count: int

    def summary(self) -> dict[str, Any]:
        """A small, secret-free summary for XCom."""
        return {
            "message_id": self.message_id,
            "status": self.status_code,
            "file_count": self.file_count,
            "attempts": self.attempts,
        }


def display_url(url: str) -> str:
    """Return ``url`` without user info, query or fragment, safe for logs and error messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def sent_url(url: str) -> str:
    """Return ``url`` as ``requests`` sends it (re-quoted), the form its error texts quote."""
    try:
        return requests.Request("POST", url).prepare().url or url
    except requests.RequestException:
        return url


def is_certificate_error(exc: BaseException) -> bool:
    """Whether ``exc`` was caused by a TLS certificate that could not be verified."""
    pending: list[BaseException] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None), *current.args)
        pending += [item for item in linked if isinstance(item, BaseException)]
    return False


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """
    Parse a ``Retry-After`` header (delay seconds or an HTTP date) into seconds from ``now``.

    :param value: the header's value, if any
    :param now: unix time to measure an HTTP date against; the clock when not given
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def build_payload(
    files: Iterable[Mapping[str, Any]], uploaded_by: str, source: str, profile_code: str
) -> dict[str, Any]:
    """
    Build ``SftpService``'s request payload; every value is sent as a string, exactly as given.

    Each file is sent as ``{"filename", "backup_path"}``: ``filename`` is the name the customer
    uploaded (the base name of its ``source_path`` when claimed), ``backup_path`` where it is stored
    now. When a name clash made the claim store it under another name, ``stored_name`` is added;
    when the file carries its ``sha256`` (checksums on), that too.

    :param files: claimed files; each needs ``filename`` and ``backup_path``, and ``source_path``
        when claimed, ``sha256`` when checksummed; other keys are ignored
    :param uploaded_by: who uploaded the batch
    :param source: where the batch came from
    :param profile_code: the document API's processing profile
    """
    entries = []
    for index, file in enumerate(files):
        missing = [key for key in ("filename", "backup_path") if not file.get(key)]
        if missing:
            raise ValueError(f"file #{index} of the batch has no {' or '.join(missing)}: keys {sorted(file)}")
        stored = str(file["filename"])
        uploaded = posixpath.basename(str(file["source_path"])) if file.get("source_path") else stored
        entry = {"filename": uploaded, "backup_path": str(file["backup_path"])}
        if uploaded != stored:
            entry["stored_name"] = stored
        if file.get(SHA256):
            entry[SHA256] = str(file[SHA256])
        entries.append(entry)
    if not entries:
        raise ValueError("a batch needs at least one file")
    return {
        "files": entries,
        "uploaded_by": str(uploaded_by),
        "source": str(source),
        "profile_code": str(profile_code),
    }


def _excerpt(text: str, limit: int = BODY_EXCERPT_CHARS) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return f"{flat[:limit]}... ({len(flat) - limit} more characters)"


class DocumentApiHook(BaseHook):
    """
    Post file batches to the Outamation document API, HMAC-signed and retried.

    One ``requests.Session`` per hook is reused for every call. Connection errors, timeouts, 408,
    429 and 5xx are retried with exponential backoff and jitter (at least ``Retry-After``, at most
    ``backoff_max`` seconds per wait); every attempt is signed afresh under the same message id,
    which is derived from the batch's content and its files' identities. Other answers fail at once:
    other statuses, a 2xx answer that is not of the expected content type (a proxy's login page), and
    a TLS certificate that cannot be verified.

    :param document_api_conn_id: the ``outamation_document_api`` connection
    :param timeout: seconds one HTTP exchange may take in all (connect, headers, body); overrides the
        connection's
    :param max_retries: retries after the first attempt; overrides the connection's
    :param backoff_initial: first backoff in seconds; overrides the connection's
    :param backoff_max: longest wait between attempts in seconds; overrides the connection's
    :param api_url: the API's URL; overrides the connection's (and ``DOC_AI_API_URL``)
    :param project: the project its API calls are timed for (``outamation.api.call.duration``);
        the connection id when not given
    """

    conn_name_attr = "document_api_conn_id"
    default_conn_name = "outamation_document_api_default"
    conn_type = "outamation_document_api"
    hook_name = "Outamation Document API"

    def __init__(
        self,
        document_api_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        backoff_initial: float | None = None,
        backoff_max: float | None = None,
        api_url: str | None = None,
        project: str | None = None,
    ) -> None:
        super().__init__()
        self.document_api_conn_id = document_api_conn_id
        self.api_url = api_url
        self.project = project or document_api_conn_id
        self._overrides: dict[str, float | int | None] = {
            "timeout": timeout,
            "max_retries": max_retries,
            "backoff_initial": backoff_initial,
            "backoff_max": backoff_max,
        }
        self._settings: DocumentApiSettings | None = None
        self._session: requests.Session | None = None
        self._pause = SharedPause()
        self._bearer: BearerToken | None = None
        self._tokens: list[str] = []
        self._scrub_tokens = Scrubber(self._tokens)

    @property
    def settings(self) -> DocumentApiSettings:
        """The connection's settings, read once; the secrets are registered with the secrets masker."""
        if self._settings is None:
            settings = self._load_settings()
            if settings.auth.mode == OAUTH2:
                self._bearer = BearerToken(self._fetch_token)
            self._settings = settings
        return self._settings

    def _load_settings(self) -> DocumentApiSettings:
        conn = self.get_connection(self.document_api_conn_id)
        for variant in secret_variants(conn.password or ""):
            mask_secret(variant)
        prefix = f"extra__{self.conn_type}__"  # older UI forms stored prefixed field names
        extra = {name.removeprefix(prefix): value for name, value in conn.extra_dejson.items()}
        try:
            scheme = SigningScheme(
                extra.get("signature_scheme") or STANDARD_WEBHOOKS,
                **({"signature_header": extra["signature_header"]} if extra.get("signature_header") else {}),
            )
            auth = ApiAuth.from_connection(conn.login, conn.password, extra, scheme.signs)
            for secret in auth.secrets:
                mask_secret(secret)
            if scheme.signs and not conn.password:
                raise ValueError("no HMAC secret (password); signature_scheme none sends unsigned requests")
            settings = DocumentApiSettings(
                url=self._url(conn.host, conn.schema, conn.port),
                secret=conn.password or "",
                scheme=scheme,
                auth=auth,
                profile_code=extra.get("profile_code") or None,
                timeout=self._number(extra, "timeout", DEFAULT_TIMEOUT, float),
                max_retries=int(self._number(extra, "max_retries", DEFAULT_MAX_RETRIES, int)),
                backoff_initial=self._number(extra, "backoff_initial", 1.0, float),
                backoff_max=self._number(extra, "backoff_max", 60.0, float),
                ca_bundle=extra.get("ca_bundle") or None,
                expected_answer=ExpectedAnswer.from_extras(
                    extra.get("expected_content_type"), extra.get("expected_json_keys")
                ),
                verify_path=(extra.get("verify_path") or "").strip() or None,
            )
        except (TypeError, ValueError) as exc:
            raise DocumentApiError(f"connection {self.document_api_conn_id!r}: {exc}") from None
        for part in url_secrets(settings.url) + url_secrets(sent_url(settings.url)):
            mask_secret(part)
        if settings.timeout <= 0:
            raise DocumentApiError(f"connection {self.document_api_conn_id!r}: timeout must be positive")
        if settings.ca_bundle and not os.path.exists(settings.ca_bundle):
            raise DocumentApiError(
                f"connection {self.document_api_conn_id!r}: ca_bundle {settings.ca_bundle} does not exist "
                "on this worker"
            )
        return settings

    def _number(self, extra: Mapping[str, Any], name: str, default: float, kind: type) -> float:
        value = self._overrides[name]
        if value is None:
            value = extra.get(name, default)
            value = default if value in (None, "") else value
        number = kind(value)
        if number < 0:
            raise ValueError(f"{name} must not be negative, got {number}")
        return float(number)

    def _url(self, host: str | None, schema: str | None, port: int | None) -> str:
        """The URL to post to: ``api_url``, else the connection's, else ``DOC_AI_API_URL``."""
        if self.api_url and self.api_url.strip():
            return self.api_url.strip()
        host = (host or "").strip()
        if not host:
            fallback = os.environ.get(URL_OVERRIDE_ENV, "").strip()
            if not fallback:
                raise ValueError(f"no api_url, no URL in the host field and {URL_OVERRIDE_ENV} is not set")
            self.log.info(
                "Connection %r has no URL: posting to %s from %s",
                self.document_api_conn_id,
                display_url(fallback),
                URL_OVERRIDE_ENV,
            )
            return fallback
        if "://" in host:
            return host
        return f"{schema or 'https'}://{host}{f':{port}' if port else ''}"

    def get_conn(self) -> requests.Session:
        """Return the hook's ``requests.Session``, created on first use and reused afterwards."""
        if self._session is None:
            session = requests.Session()
            adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=MAX_IN_FLIGHT)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.headers.update(
                {
                    "Content-Type": "application/json",
                    "User-Agent": f"airflow-provider-outamation/{__version__}",
                }
            )
            self._session = session
        return self._session

    def close(self) -> None:
        """Close the session and its pooled HTTP connections; the next call opens a new one."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def submit_batch(
        self,
        files: Iterable[Mapping[str, Any]],
        uploaded_by: str,
        source: str,
        profile_code: str | None = None,
    ) -> BatchSubmission:
        """
        POST one batch ``{"files": [{filename, backup_path}], uploaded_by, source, profile_code}``.

        :param files: the batch's files; each needs ``filename`` and ``backup_path``; their ``size``
            and ``mtime``, when claimed, enter the message id
        :param uploaded_by: who uploaded the batch
        :param source: where the batch came from
        :param profile_code: the processing profile; the connection's ``profile_code`` when not given
        :raises DocumentApiError: the API refused the batch or could not be reached after all retries
        """
        return self.send_batch(self.prepare_batch(files, uploaded_by, source, profile_code))

    def prepare_batch(
        self,
        files: Iterable[Mapping[str, Any]],
        uploaded_by: str,
        source: str,
        profile_code: str | None = None,
    ) -> PreparedBatch:
        """
        Build a batch's payload, body and message id without sending it.

        :param files: the batch's files; each needs ``filename`` and ``backup_path``; their ``size``
            and ``mtime``, when claimed, enter the message id
        :param uploaded_by: who uploaded the batch
        :param source: where the batch came from
        :param profile_code: the processing profile; the connection's ``profile_code`` when not given
        """
        profile = profile_code or self.settings.profile_code
        if not profile:
            raise ValueError(
                f"no profile_code given and connection {self.document_api_conn_id!r} has none in its extras"
            )
        claimed = list(files)
        payload = build_payload(claimed, uploaded_by, source, profile)
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        # A checksum adds nothing to a claimed file's identity: the id stays the same with or without.
        unsummed = [{k: v for k, v in f.items() if k != SHA256} for f in payload["files"]]
        return PreparedBatch(message_id({**payload, "files": unsummed}, claimed), body, len(unsummed))

    def send_batch(self, batch: PreparedBatch) -> BatchSubmission:
        """
        POST a prepared batch, retried with backoff; every attempt is signed afresh under its id.

        :param batch: from :meth:`prepare_batch`
        :raises DocumentApiError: the API refused the batch or could not be reached after all retries
        """
        settings = self.settings
        retrying = Retrying(
            stop=stop_after_attempt(settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception_type(DocumentApiTransientError),
            before_sleep=self._log_retry,
        )
        try:
            for attempt in retrying:
                with attempt:
                    response = self._post(batch.message_id, batch.body, attempt.retry_state.attempt_number)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise DocumentApiError(
                f"gave up on batch {batch.message_id} after {exc.last_attempt.attempt_number} attempts; "
                f"last: {last}",
                status=getattr(last, "status", None),
            ) from last
        result = BatchSubmission(
            batch.message_id, response.status_code, attempt.retry_state.attempt_number, batch.file_count
        )
        self.log.debug(
            "%s accepted batch %s (%d files) with HTTP %d after %d attempt(s)",
            display_url(settings.url),
            batch.message_id,
            result.file_count,
            result.status_code,
            result.attempts,
        )
        return result

    def send_batches(
        self, batches: Sequence[PreparedBatch], max_in_flight: int = 8
    ) -> Iterator[tuple[PreparedBatch, BatchSubmission | DocumentApiError]]:
        """
        Send many batches over this hook's session, ``max_in_flight`` at a time; yield each outcome.

        Each batch is sent as by :meth:`send_batch` (own id, fresh signature per attempt, retries).
        A ``Retry-After`` answer (429, 503) pauses every sender of this hook, not only the one that
        got it. A failed batch does not stop the others: its :class:`DocumentApiError` is yielded.
        Outcomes come in the order they finish, in the caller's thread.

        :param batches: from :meth:`prepare_batch`
        :param max_in_flight: requests in flight at most (1 to ``MAX_IN_FLIGHT``)
        """
        if not 1 <= max_in_flight <= MAX_IN_FLIGHT:
            raise ValueError(f"max_in_flight must be between 1 and {MAX_IN_FLIGHT}, got {max_in_flight}")
        _ = self.settings  # loaded once, before the threads share them
        with ThreadPoolExecutor(max_in_flight, thread_name_prefix="document-api") as pool:
            queue = iter(batches)
            running: dict[Future[BatchSubmission], PreparedBatch] = {}
            for batch in queue:
                running[pool.submit(self.send_batch, batch)] = batch
                if len(running) == max_in_flight:
                    break
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    batch = running.pop(future)
                    error = future.exception()
                    if error is not None and not isinstance(error, DocumentApiError):
                        raise error
                    yield batch, error if error is not None else future.result()
                    following = next(queue, None)
                    if following is not None:
                        running[pool.submit(self.send_batch, following)] = following

    def _post(self, msg_id: str, body: bytes, attempt_number: int) -> requests.Response:
        """
        Sign and send one attempt; raise a transient or final :class:`DocumentApiError` on failure.

        An OAuth2 token the API refuses (401) is replaced once and the request sent again, within
        the same attempt and under the same message id.
        """
        settings = self.settings
        where = f"{display_url(settings.url)} (batch {msg_id}, attempt {attempt_number})"
        for refreshed in (False, True):
            self._pause.wait()
            headers, token = self._credentials()
            headers |= sign(msg_id, body, settings.secret, scheme=settings.scheme)
            with metrics.timed(metrics.API_CALL_DURATION, self.project):
                response = self._request("POST", settings.url, where, data=body, headers=headers)
            if response.status_code != 401 or token is None or refreshed or self._bearer is None:
                break
            self.log.info("%s refused the OAuth2 access token (HTTP 401): fetching a new one", where)
            self._bearer.discard(token)
        failure = self._answer_failure(response, where)
        if failure is not None:
            raise failure
        return response

    def _credentials(self) -> tuple[dict[str, str], str | None]:
        """The API key or bearer token headers of a request, and the token sent (``None`` without one)."""
        headers = self.settings.auth.static_headers()
        if self._bearer is None:
            return headers, None
        token = self._bearer.get()
        return {**headers, "Authorization": f"Bearer {token}"}, token

    def _fetch_token(self) -> tuple[str, float | None]:
        """
        Get an access token by the OAuth2 client credentials grant; return it and its lifetime.

        :raises DocumentApiError: the token endpoint refused or gave no token; transient for
            timeouts, lost connections, 408, 429 and 5xx
        """
        token_url, form, client = self.settings.auth.token_request()
        where = f"the token endpoint {display_url(token_url)}"
        response = self._request(
            "POST",
            token_url,
            where,
            data=form,
            auth=client,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        try:
            answer = response.json() if response.ok else {}
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            status = f"HTTP {response.status_code}"
            message = (
                f"{where} answered {status} without an access token: {self._scrub(_excerpt(response.text))}"
            )
            if response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
                raise DocumentApiTransientError(message, status=response.status_code)
            raise DocumentApiError(
                f"{message}; check the OAuth2 client id and secret of connection "
                f"{self.document_api_conn_id!r}",
                status=response.status_code,
            )
        mask_secret(token)
        self._tokens.append(token)
        self._scrub_tokens = Scrubber(self._tokens)
        try:  # some token endpoints send expires_in as a string; without one the token is kept until a 401
            lifetime = float(answer["expires_in"])
        except (KeyError, TypeError, ValueError):
            return token, None
        return token, lifetime if lifetime > 0 else None

    def _request(self, method: str, url: str, where: str, **kwargs: Any) -> requests.Response:
        """
        One HTTP exchange, all of it (connect, headers, body) within the connection's ``timeout``.

        :raises DocumentApiError: no answer; transient when worth retrying (a timeout, a lost connection)
        """
        settings = self.settings
        with total_deadline(settings.timeout) as exchange:
            try:
                return self.get_conn().request(
                    method,
                    url,
                    timeout=settings.timeout,
                    allow_redirects=False,
                    verify=settings.verify,
                    **kwargs,
                )
            except requests.RequestException as exc:
                failure = self._request_failure(exc, where, exchange.expired)
        # Raised outside the except clause: the requests exception, whose text quotes the
        # URL's query, is neither chained to it nor printed in its traceback.
        raise failure

    def _request_failure(
        self, exc: requests.RequestException, where: str, past_deadline: bool = False
    ) -> DocumentApiError:
        """Turn a request that got no (whole) answer into a transient or final error with a scrubbed text."""
        detail = self._scrub(str(exc))
        if past_deadline:
            return DocumentApiTransientError(
                f"no complete answer from {where} within {self.settings.timeout:g} s "
                f"(connect, headers and body): {detail}"
            )
        if is_certificate_error(exc):
            return DocumentApiError(
                f"the TLS certificate of {where} was not accepted: {detail}. If the API uses a private CA "
                f"or a self-signed certificate, set the extra ca_bundle of connection "
                f"{self.document_api_conn_id!r} to the path of that CA's (or the certificate's) PEM file"
            )
        if isinstance(exc, requests.Timeout):
            return DocumentApiTransientError(
                f"no answer from {where} within {self.settings.timeout:g} s: {detail}"
            )
        if isinstance(exc, requests.ConnectionError | requests.exceptions.ChunkedEncodingError):
            return DocumentApiTransientError(f"could not reach {where}: {detail}")
        return DocumentApiError(f"request to {where} failed: {detail}")

    def _answer_failure(self, response: requests.Response, where: str) -> DocumentApiError | None:
        """Return the error an answer means (transient for 408, 429, 5xx), or ``None`` if it accepts."""
        accepted = 200 <= response.status_code < 300
        content_type = response.headers.get("Content-Type")
        problem = self.settings.expected_answer.problem(content_type, response.text) if accepted else None
        if accepted and problem is None:
            return None
        status = f"HTTP {response.status_code} {response.reason or ''}".rstrip()
        excerpt = self._scrub(_excerpt(response.text)) or "(empty body)"
        if problem is not None:
            return DocumentApiError(
                f"{where} answered {status} with content type {self._scrub(content_type or '(none)')}, "
                f"which does not accept the batch: {problem}; body: {excerpt}. If the API "
                f"answers so, set the extras expected_content_type and expected_json_keys of connection "
                f"{self.document_api_conn_id!r}",
                status=response.status_code,
            )
        message = f"{where} answered {status}: {excerpt}"
        if response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after:
                self._pause.extend(min(retry_after, self.settings.backoff_max))
            return DocumentApiTransientError(message, retry_after, status=response.status_code)
        if 400 <= response.status_code < 500:
            return DocumentApiRejectedError(message, status=response.status_code)
        return DocumentApiError(message, status=response.status_code)

    def _wait(self, retry_state: RetryCallState) -> float:
        """Exponential backoff with jitter, at least ``Retry-After``, at most ``backoff_max``."""
        settings = self.settings
        backoff = wait_exponential(
            multiplier=settings.backoff_initial, max=settings.backoff_max
        ) + wait_random(0, settings.backoff_initial)
        backoff_seconds = backoff(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(exc, "retry_after", None) or 0.0
        return min(max(backoff_seconds, retry_after), settings.backoff_max)

    def _log_retry(self, retry_state: RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        self.log.warning(
            "Attempt %d of %d failed: %s; retrying in %.2f s",
            retry_state.attempt_number,
            self.settings.max_retries + 1,
            exc,
            wait,
        )

    def _scrub(self, text: str) -> str:
        """Mask secrets, access tokens and the URL's query and user info in text that came from outside."""
        return self._scrub_tokens(self._settings.scrub(text)) if self._settings else text

    def test_connection(self) -> tuple[bool, str]:
        """
        Say what could be proved: the URL answers an unsigned HEAD, or the API accepts a signed request.

        Without the extra ``verify_path`` only reachability is checked (the secret is not). With it, a
        ``GET`` of that path (relative to the URL), signed like a batch over an empty body, must be
        accepted (2xx); 401 or 403 means the API refused the signature.
        """
        try:
            settings = self.settings
            if settings.verify_path:
                return self._test_signed(settings)
            response = self._request("HEAD", settings.url, display_url(settings.url))
        except DocumentApiError as exc:
            return False, self._scrub(str(exc))
        where = display_url(settings.url)
        if response.status_code >= 500 or response.status_code in (401, 403, 404):
            return False, f"{where} answered HTTP {response.status_code} to an unsigned HEAD"
        return True, (
            f"{where}: reachable only (unsigned HEAD answered {response.status_code}); the HMAC secret was "
            "not checked: set the extra verify_path to a path of the API that checks signatures to test it"
        )

    def _test_signed(self, settings: DocumentApiSettings) -> tuple[bool, str]:
        """Send a signed ``GET`` of ``verify_path``; say whether the API accepted its signature."""
        url = urljoin(settings.url, settings.verify_path)
        where = f"{display_url(url)} ({settings.scheme.name} signature)"
        headers, _ = self._credentials()
        headers |= sign(f"connection-test-{uuid.uuid4().hex}", b"", settings.secret, scheme=settings.scheme)
        response = self._request("GET", url, where, headers=headers)
        if 200 <= response.status_code < 300:
            return True, f"signed request accepted: {where} answered HTTP {response.status_code}"
        if response.status_code in (401, 403):
            return False, (
                f"signature refused: check the HMAC secret (password), signature scheme and auth settings of "
                f"connection {self.document_api_conn_id!r}: {where} answered HTTP {response.status_code}"
            )
        return False, f"{where} answered HTTP {response.status_code} to the signed test request"
