"""
Keep secrets out of text that came from outside: exception strings, response bodies (pure, no I/O).

What counts as secret: the HMAC secret and, for a ``whsec_<base64>`` secret, its base64 payload;
the URL's query (whole, and each value), fragment and user info. Every one of them is masked where
it appears whole, and any run of :data:`FRAGMENT_CHARS` or more of its characters is masked too, so
an API that echoes part of a secret (a truncated key, a prefix) does not get it into a log.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote, unquote_plus, urlsplit

from airflow_outamation.signing import SECRET_PREFIX

MASK = "***"
FRAGMENT_CHARS = 8
"""A run of this many characters of a secret is masked: long enough not to mask ordinary words."""
MIN_SECRET_CHARS = 5
"""Shorter strings (``?v=2``) are not masked: replacing them would garble ordinary text (Airflow's
secrets masker has the same minimum by default)."""


def secret_variants(secret: str) -> list[str]:
    """
    Return the forms of a signing secret to mask: itself and, for ``whsec_<base64>``, the base64 part.

    :param secret: the shared secret as configured
    """
    variants = [secret]
    payload = secret.removeprefix(SECRET_PREFIX)
    if payload and payload != secret:
        variants.append(payload)
    return variants


def url_secrets(url: str) -> list[str]:
    """
    Return the parts of ``url`` that must never be shown: query, each query value, fragment, user info.

    Raw and percent-decoded forms are both returned, since error texts may show either.

    :param url: the URL as configured or as sent
    """
    parts = urlsplit(url)
    found: list[str] = []
    if parts.query:
        found += [parts.query, unquote_plus(parts.query)]
        for pair in parts.query.split("&"):
            value = pair.partition("=")[2]
            found += [value, unquote_plus(value)]
    if parts.fragment:
        found += [parts.fragment, unquote(parts.fragment)]
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        password = userinfo.partition(":")[2]
        found += [userinfo, unquote(userinfo), password, unquote(password)]
    return list(dict.fromkeys(part for part in found if len(part) >= MIN_SECRET_CHARS))


class Scrubber:
    """
    Mask secrets, and every run of ``fragment_chars`` or more of their characters, in a text.

    :param secrets: the strings never to show; those shorter than :data:`MIN_SECRET_CHARS` are ignored
    :param fragment_chars: length of the shortest run of a secret's characters that is masked
    """

    def __init__(self, secrets: Iterable[str], fragment_chars: int = FRAGMENT_CHARS) -> None:
        self._whole = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._fragment_chars = fragment_chars
        self._fragments = {
            secret[start : start + fragment_chars]
            for secret in self._whole
            for start in range(len(secret) - fragment_chars + 1)
        }

    def __call__(self, text: str) -> str:
        """
        Return ``text`` with every secret and every fragment of one replaced by ``***``.

        :param text: text from outside (an exception string, a response body excerpt)
        """
        for secret in self._whole:
            text = text.replace(secret, MASK)
        size = self._fragment_chars
        spans: list[list[int]] = []
        for start in range(len(text) - size + 1):
            if text[start : start + size] in self._fragments:
                if spans and start <= spans[-1][1]:
                    spans[-1][1] = start + size
                else:
                    spans.append([start, start + size])
        for start, end in reversed(spans):
            text = text[:start] + MASK + text[end:]
        return text
