"""
HMAC request signing and verification for the document API (pure functions, no I/O).

Schemes (the connection extra ``signature_scheme``):

- ``standard-webhooks`` (default), the `Standard Webhooks <https://www.standardwebhooks.com/>`__ spec:
  headers ``webhook-id``, ``webhook-timestamp`` (unix seconds) and
  ``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``.
- ``hex-hmac``: ``<signature header>: sha256=<hex HMAC-SHA256(key, "{timestamp}.{body}")>`` plus
  ``X-Webhook-Timestamp`` and ``X-Webhook-Id``; the signature header name is configurable
  (``X-Signature`` by default).
- ``github``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(key, body)>``, the message id in
  ``X-GitHub-Delivery``. GitHub's scheme has no timestamp, so it cannot refuse a replayed request.
- ``stripe``: ``Stripe-Signature: t=<timestamp>,v1=<hex HMAC-SHA256(key, "{timestamp}.{body}")>``,
  the message id in ``X-Webhook-Id``.
- ``slack``: ``X-Slack-Signature: v0=<hex HMAC-SHA256(key, "v0:{timestamp}:{body}")>`` and
  ``X-Slack-Request-Timestamp``, the message id in ``X-Webhook-Id``.
- ``none``: no signature, only ``X-Webhook-Id`` (for APIs that authenticate by API key or OAuth2 alone).

For ``standard-webhooks`` and ``hex-hmac`` a secret ``whsec_<base64>`` is base64-decoded to the key;
the vendor presets use the secret's UTF-8 bytes as their vendors do (a Stripe ``whsec_`` secret too).
A signature header may carry several signatures (secret rotation); one match suffices.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

STANDARD_WEBHOOKS = "standard-webhooks"
HEX_HMAC = "hex-hmac"
GITHUB = "github"
STRIPE = "stripe"
SLACK = "slack"
UNSIGNED = "none"
SIGNATURE_SCHEMES = (STANDARD_WEBHOOKS, HEX_HMAC, GITHUB, STRIPE, SLACK, UNSIGNED)
DEFAULT_HEX_SIGNATURE_HEADER = "X-Signature"
DEFAULT_TOLERANCE = 300
SECRET_PREFIX = "whsec_"


class SignatureError(ValueError):
    """A request's signature headers are missing, malformed, stale or do not match the body."""


#: Per scheme: the headers of the message id, the timestamp and the signature (``None``: no such
#: header; Stripe's timestamp rides in its signature header, ``hex-hmac``'s signature header is configured).
_HEADERS: dict[str, tuple[str, str | None, str | None]] = {
    STANDARD_WEBHOOKS: ("webhook-id", "webhook-timestamp", "webhook-signature"),
    HEX_HMAC: ("X-Webhook-Id", "X-Webhook-Timestamp", None),
    GITHUB: ("X-GitHub-Delivery", None, "X-Hub-Signature-256"),
    STRIPE: ("X-Webhook-Id", None, "Stripe-Signature"),
    SLACK: ("X-Webhook-Id", "X-Slack-Request-Timestamp", "X-Slack-Signature"),
    UNSIGNED: ("X-Webhook-Id", None, None),
}
#: The prefix of a hex signature in each hex scheme's signature header.
_HEX_PREFIXES = {HEX_HMAC: "sha256=", GITHUB: "sha256=", SLACK: "v0=", STRIPE: "v1="}


@dataclass(frozen=True)
class SigningScheme:
    """
    Which headers carry the message id, timestamp and signature, and how the signature is made.

    :param name: one of :data:`SIGNATURE_SCHEMES`
    :param signature_header: the signature header of the ``hex-hmac`` scheme
    """

    name: str = STANDARD_WEBHOOKS
    signature_header: str = DEFAULT_HEX_SIGNATURE_HEADER

    def __post_init__(self) -> None:
        if self.name not in SIGNATURE_SCHEMES:
            raise ValueError(f"unknown signature scheme {self.name!r}; expected one of {SIGNATURE_SCHEMES}")
        if not self.signature_header.strip():
            raise ValueError("the signature header name must not be empty")

    @property
    def signs(self) -> bool:
        """Whether requests are signed at all (every scheme but ``none``)."""
        return self.name != UNSIGNED

    @property
    def id_header(self) -> str:
        """Header carrying the message id."""
        return _HEADERS[self.name][0]

    @property
    def timestamp_header(self) -> str | None:
        """Header carrying the unix timestamp the request was signed at, if the scheme has one."""
        return _HEADERS[self.name][1]

    @property
    def signature_header_name(self) -> str | None:
        """Header carrying the signature(s); ``None`` for ``none``."""
        return self.signature_header if self.name == HEX_HMAC else _HEADERS[self.name][2]

    def key(self, secret: str | bytes) -> bytes:
        """
        The HMAC key: :func:`secret_key` for Standard Webhooks and ``hex-hmac``, else the secret's bytes.

        :param secret: the shared secret as configured
        """
        if self.name in (STANDARD_WEBHOOKS, HEX_HMAC):
            return secret_key(secret)
        key = secret.encode("utf-8") if isinstance(secret, str) else secret
        if not key:
            raise ValueError("the signing secret must not be empty")
        return key


def secret_key(secret: str | bytes) -> bytes:
    """
    Return the HMAC key for ``secret``: base64-decoded after a ``whsec_`` prefix, else its UTF-8 bytes.

    :param secret: the shared secret as configured (the connection's password)
    """
    if isinstance(secret, bytes):
        key = secret
    elif secret.startswith(SECRET_PREFIX):
        encoded = secret[len(SECRET_PREFIX) :]
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raise ValueError("a whsec_ secret must be base64 after its prefix") from None
    else:
        key = secret.encode("utf-8")
    if not key:
        raise ValueError("the signing secret must not be empty")
    return key


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def file_identity(file: Mapping[str, Any]) -> list[Any] | None:
    """
    Return a claimed file's identity: ``[claim id, index, size, mtime]``; ``None`` when it records none.

    Files claimed before 0.4 have no index: their identity is ``[size, mtime]``, as 0.3 derived it,
    so their batches keep their ids. ``mtime`` is compared as a float, so ``1700000000`` and
    ``1700000000.0`` are the same identity.

    :param file: a claimed file; ``manifest_id`` with ``index`` (its claim identity), ``size``
        (int bytes) and ``mtime`` (epoch seconds) are optional
    """
    size, mtime = file.get("size"), file.get("mtime")
    claim, index = file.get("manifest_id"), file.get("index")
    if claim is not None and index is not None:
        return [str(claim), int(index), size, None if mtime is None else float(mtime)]
    if size is None and mtime is None:
        return None
    if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
        raise ValueError(f"the size of {file.get('filename')!r} must be an integer, got {size!r}")
    if mtime is not None and (isinstance(mtime, bool) or not isinstance(mtime, (int, float))):
        raise ValueError(f"the mtime of {file.get('filename')!r} must be a number, got {mtime!r}")
    return [size, None if mtime is None else float(mtime)]


def message_id(payload: Any, files: Iterable[Mapping[str, Any]] = ()) -> str:
    """
    Derive a message id from a payload's content and its files' identities, stable across resends.

    The id covers the exact payload and, in the order given, each file's identity
    (:func:`file_identity`: its claim id and index within the claim, size and mtime): every resend of
    a batch has the same id, and a new claim of the same bytes under the same name gets a new one,
    so the API does not de-duplicate it away. Files that record no identity (claims made before
    identities were recorded) leave the id of the payload alone.

    :param payload: a JSON-serialisable payload without timestamps
    :param files: the claimed files the payload was built from, in payload order
    """
    content = _canonical(payload)
    identities = [file_identity(file) for file in files]
    if any(identity is not None for identity in identities):
        # Compact JSON never holds a raw newline, so the two parts cannot run into each other.
        content += "\n" + _canonical(identities)
    return "msg_" + hashlib.sha256(content.encode("utf-8")).hexdigest()[:32]


def _signed_content(scheme: SigningScheme, msg_id: str, timestamp: int, body: bytes) -> bytes:
    prefix = {
        STANDARD_WEBHOOKS: f"{msg_id}.{timestamp}.",
        GITHUB: "",
        SLACK: f"v0:{timestamp}:",
    }.get(scheme.name, f"{timestamp}.")
    return prefix.encode("utf-8") + body


def _digest(scheme: SigningScheme, key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, _signed_content(scheme, msg_id, timestamp, body), hashlib.sha256).digest()


def _signature(scheme: SigningScheme, digest: bytes, timestamp: int) -> str:
    if scheme.name == STANDARD_WEBHOOKS:
        return "v1," + base64.b64encode(digest).decode("ascii")
    if scheme.name == STRIPE:
        return f"t={timestamp},v1={digest.hex()}"
    return _HEX_PREFIXES[scheme.name] + digest.hex()


def sign(
    msg_id: str,
    body: bytes,
    secret: str | bytes,
    *,
    timestamp: int | None = None,
    scheme: SigningScheme | None = None,
) -> dict[str, str]:
    """
    Return the headers that sign ``body`` under ``msg_id`` at ``timestamp`` (now by default).

    :param msg_id: the message id, the same for every attempt of one batch
    :param body: the exact request body bytes
    :param secret: the shared secret (``whsec_<base64>`` or raw text); unused by the ``none`` scheme
    :param timestamp: unix seconds; now when not given
    :param scheme: the signing scheme; Standard Webhooks when not given
    """
    scheme = scheme or SigningScheme()
    headers = {scheme.id_header: msg_id}
    if scheme.signature_header_name is None:
        return headers
    ts = int(time.time()) if timestamp is None else timestamp
    if scheme.timestamp_header is not None:
        headers[scheme.timestamp_header] = str(ts)
    digest = _digest(scheme, scheme.key(secret), msg_id, ts, body)
    headers[scheme.signature_header_name] = _signature(scheme, digest, ts)
    return headers


def _timestamp(value: str, tolerance: int, now: float) -> int:
    if not value.isascii() or not value.isdigit():
        raise SignatureError("the timestamp header is not unix seconds")
    ts = int(value)
    if ts < now - tolerance:
        raise SignatureError(f"the timestamp is more than {tolerance} s old")
    if ts > now + tolerance:
        raise SignatureError(f"the timestamp is more than {tolerance} s in the future")
    return ts


def _entries(scheme: SigningScheme, header: str) -> tuple[str | None, list[str]]:
    """Split a signature header into its timestamp (Stripe's ``t=``) and its signatures of our version."""
    if scheme.name == STRIPE:
        pairs = [entry.strip().partition("=") for entry in header.split(",")]
        stamps = [value for name, _, value in pairs if name == "t"]
        return (stamps[0] if stamps else None), [value for name, _, value in pairs if name == "v1"]
    prefix = "v1," if scheme.name == STANDARD_WEBHOOKS else _HEX_PREFIXES[scheme.name]
    return None, [entry[len(prefix) :] for entry in header.split() if entry.startswith(prefix)]


def _decode(scheme: SigningScheme, value: str) -> bytes | None:
    try:
        if scheme.name == STANDARD_WEBHOOKS:
            return base64.b64decode(value, validate=True)
        return bytes.fromhex(value)
    except (binascii.Error, ValueError):
        return None


def verify(
    headers: Mapping[str, str],
    body: bytes | str,
    secret: str | bytes,
    tolerance: int = DEFAULT_TOLERANCE,
    *,
    scheme: SigningScheme | None = None,
    now: float | None = None,
) -> str:
    """
    Check a request's signature; return its message id or raise :class:`SignatureError`.

    Header names are case-insensitive; signatures are compared in constant time. The ``github``
    scheme has no timestamp to check; ``none`` only requires the message id.

    :param headers: the request headers (any mapping with ``items()``)
    :param body: the exact request body
    :param secret: the shared secret (``whsec_<base64>`` or raw text)
    :param tolerance: how many seconds the timestamp may differ from ``now``
    :param scheme: the signing scheme; Standard Webhooks when not given
    :param now: unix time to check the timestamp against; the clock when not given
    """
    scheme = scheme or SigningScheme()
    body_bytes = body.encode("utf-8") if isinstance(body, str) else body
    lowered = {name.lower(): value for name, value in headers.items()}
    names = [scheme.id_header, scheme.timestamp_header, scheme.signature_header_name]
    missing = [name for name in names if name is not None and not lowered.get(name.lower())]
    if missing:
        raise SignatureError(f"missing signature header(s): {', '.join(missing)}")
    msg_id = lowered[scheme.id_header.lower()]
    if scheme.signature_header_name is None:
        return msg_id
    ts_value, signatures = _entries(scheme, lowered[scheme.signature_header_name.lower()])
    if scheme.timestamp_header is not None:
        ts_value = lowered[scheme.timestamp_header.lower()]
    ts = 0
    if scheme.name != GITHUB:
        if ts_value is None:
            raise SignatureError("the signature header has no timestamp (t=)")
        ts = _timestamp(ts_value.strip(), tolerance, time.time() if now is None else now)
    expected = _digest(scheme, scheme.key(secret), msg_id, ts, body_bytes)
    matched = False
    for value in signatures:
        candidate = _decode(scheme, value)
        matched |= candidate is not None and hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("no signature matches the body")
    return msg_id
