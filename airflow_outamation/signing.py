"""
HMAC request signing and verification for the document API (pure functions, no I/O).

Two schemes:

- ``standard-webhooks`` (default), the `Standard Webhooks <https://www.standardwebhooks.com/>`__ spec:
  headers ``webhook-id``, ``webhook-timestamp`` (unix seconds) and
  ``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>``.
- ``hex-hmac`` (GitHub/Stripe style): ``<signature header>: sha256=<hex HMAC-SHA256(key,
  "{timestamp}.{body}")>`` plus ``X-Webhook-Timestamp`` and ``X-Webhook-Id``; the signature header
  name is configurable (``X-Signature`` by default).

A secret ``whsec_<base64>`` is base64-decoded to the key; any other secret is used as its UTF-8 bytes.
A signature header may carry several space-separated signatures (secret rotation); one match suffices.
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
SIGNATURE_SCHEMES = (STANDARD_WEBHOOKS, HEX_HMAC)
DEFAULT_HEX_SIGNATURE_HEADER = "X-Signature"
DEFAULT_TOLERANCE = 300
SECRET_PREFIX = "whsec_"


class SignatureError(ValueError):
    """A request's signature headers are missing, malformed, stale or do not match the body."""


@dataclass(frozen=True)
class SigningScheme:
    """
    Which headers carry the message id, timestamp and signature, and how the signature is made.

    :param name: ``standard-webhooks`` or ``hex-hmac``
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
    def id_header(self) -> str:
        """Header carrying the message id."""
        return "webhook-id" if self.name == STANDARD_WEBHOOKS else "X-Webhook-Id"

    @property
    def timestamp_header(self) -> str:
        """Header carrying the unix timestamp the request was signed at."""
        return "webhook-timestamp" if self.name == STANDARD_WEBHOOKS else "X-Webhook-Timestamp"

    @property
    def signature_header_name(self) -> str:
        """Header carrying the signature(s)."""
        return "webhook-signature" if self.name == STANDARD_WEBHOOKS else self.signature_header


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
    prefix = f"{msg_id}.{timestamp}." if scheme.name == STANDARD_WEBHOOKS else f"{timestamp}."
    return prefix.encode("utf-8") + body


def _digest(scheme: SigningScheme, key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    return hmac.new(key, _signed_content(scheme, msg_id, timestamp, body), hashlib.sha256).digest()


def _signature(scheme: SigningScheme, key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    digest = _digest(scheme, key, msg_id, timestamp, body)
    if scheme.name == STANDARD_WEBHOOKS:
        return "v1," + base64.b64encode(digest).decode("ascii")
    return "sha256=" + digest.hex()


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
    :param secret: the shared secret (``whsec_<base64>`` or raw text)
    :param timestamp: unix seconds; now when not given
    :param scheme: the signing scheme; Standard Webhooks when not given
    """
    scheme = scheme or SigningScheme()
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        scheme.id_header: msg_id,
        scheme.timestamp_header: str(ts),
        scheme.signature_header_name: _signature(scheme, secret_key(secret), msg_id, ts, body),
    }


def _timestamp(value: str, tolerance: int, now: float) -> int:
    if not value.isascii() or not value.isdigit():
        raise SignatureError("the timestamp header is not unix seconds")
    ts = int(value)
    if ts < now - tolerance:
        raise SignatureError(f"the timestamp is more than {tolerance} s old")
    if ts > now + tolerance:
        raise SignatureError(f"the timestamp is more than {tolerance} s in the future")
    return ts


def _candidates(scheme: SigningScheme, header: str) -> list[bytes]:
    """Decode every signature of our version in a (space-separated) signature header."""
    found = []
    for entry in header.split():
        if scheme.name == STANDARD_WEBHOOKS:
            version, _, value = entry.partition(",")
            if version != "v1":
                continue
            try:
                found.append(base64.b64decode(value, validate=True))
            except binascii.Error:
                continue
        else:
            algorithm, _, value = entry.partition("=")
            if algorithm != "sha256":
                continue
            try:
                found.append(bytes.fromhex(value))
            except ValueError:
                continue
    return found


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

    Header names are case-insensitive; signatures are compared in constant time.

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
    names = (scheme.id_header, scheme.timestamp_header, scheme.signature_header_name)
    missing = [name for name in names if not lowered.get(name.lower())]
    if missing:
        raise SignatureError(f"missing signature header(s): {', '.join(missing)}")
    msg_id, ts_value, signatures = (lowered[name.lower()] for name in names)
    ts = _timestamp(ts_value.strip(), tolerance, time.time() if now is None else now)
    expected = _digest(scheme, secret_key(secret), msg_id, ts, body_bytes)
    matched = False
    for candidate in _candidates(scheme, signatures):
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("no signature matches the body")
    return msg_id
