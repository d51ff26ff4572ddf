"""
How a document API connection authenticates, besides (or instead of) its signature.

The connection extra ``auth`` picks the mode: ``none`` (default: the signature alone), ``api-key``
(a static header, ``X-API-Key`` unless ``api_key_header`` says otherwise) or ``oauth2`` (an OAuth2
client credentials grant from ``token_url``; the bearer token is cached until shortly before it
expires). Secrets come from extras Airflow masks (``api_key``, ``client_secret``) or, when the
connection does not sign (``signature_scheme: none``), from its password.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

NO_AUTH = "none"
API_KEY = "api-key"
OAUTH2 = "oauth2"
AUTH_MODES = (NO_AUTH, API_KEY, OAUTH2)
DEFAULT_API_KEY_HEADER = "X-API-Key"
#: A token is fetched anew this many seconds before it expires (at most half its lifetime).
TOKEN_EXPIRY_MARGIN = 30.0


@dataclass(frozen=True)
class ApiAuth:
    """
    The credentials a document API connection sends with every request.

    :param mode: ``none``, ``api-key`` or ``oauth2``
    :param api_key: the static key of ``api-key``
    :param api_key_header: the header it is sent in
    :param token_url: the OAuth2 token endpoint of ``oauth2``
    :param client_id: the OAuth2 client id
    :param client_secret: the OAuth2 client secret
    :param scope: the OAuth2 scope to ask for, if any
    """

    mode: str = NO_AUTH
    api_key: str | None = field(default=None, repr=False)
    api_key_header: str = DEFAULT_API_KEY_HEADER
    token_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None

    @classmethod
    def from_connection(
        cls, login: str | None, password: str | None, extra: Mapping[str, Any], signs: bool
    ) -> ApiAuth:
        """
        Read the ``auth`` settings of a connection; raise ``ValueError`` naming what is missing.

        :param login: the connection's login (the OAuth2 client id unless the extra ``client_id`` is set)
        :param password: the connection's password (the HMAC secret when ``signs``, else the API key
            or client secret unless an extra holds it)
        :param extra: the connection's extra, as a dict
        :param signs: whether the connection signs requests (then the password is the HMAC secret)
        """
        mode = extra.get("auth") or NO_AUTH
        if mode not in AUTH_MODES:
            raise ValueError(f"unknown auth {mode!r}; expected one of {AUTH_MODES}")
        spare_password = None if signs else password or None
        where = "extra" if signs else "extra or password"
        if mode == API_KEY:
            key = extra.get("api_key") or spare_password
            if not key:
                raise ValueError(f"auth api-key needs the key in the {where} api_key")
            header = (extra.get("api_key_header") or DEFAULT_API_KEY_HEADER).strip()
            return cls(API_KEY, api_key=key, api_key_header=header)
        if mode == OAUTH2:
            token_url = (extra.get("token_url") or "").strip()
            client_id = extra.get("client_id") or login
            client_secret = extra.get("client_secret") or spare_password
            if not token_url:
                raise ValueError("auth oauth2 needs the extra token_url")
            if not client_id:
                raise ValueError("auth oauth2 needs a client id (the extra client_id or the login)")
            if not client_secret:
                raise ValueError(f"auth oauth2 needs the client secret in the {where} client_secret")
            scope = extra.get("scope") or None
            return cls(
                OAUTH2, token_url=token_url, client_id=client_id, client_secret=client_secret, scope=scope
            )
        return cls()

    @property
    def secrets(self) -> list[str]:
        """The strings never to show: the API key and the client secret."""
        return [value for value in (self.api_key, self.client_secret) if value]

    def token_request(self) -> tuple[str, dict[str, str], tuple[str, str]]:
        """The token URL, form and Basic auth (client id, secret) of a client credentials grant."""
        if not (self.mode == OAUTH2 and self.token_url and self.client_id and self.client_secret):
            raise ValueError("only an oauth2 connection with a token_url, client id and secret gets tokens")
        form = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {})}
        return self.token_url, form, (self.client_id, self.client_secret)

    def static_headers(self) -> dict[str, str]:
        """The headers every request carries whatever the token: the API key's."""
        return {self.api_key_header: self.api_key} if self.mode == API_KEY and self.api_key else {}


class BearerToken:
    """
    An OAuth2 access token, fetched when first needed and again shortly before it expires. Thread-safe.

    :param fetch: gets a new token; returns it and its lifetime in seconds (``None``: no expiry given)
    :param clock: monotonic seconds (replaced in tests)
    """

    def __init__(
        self, fetch: Callable[[], tuple[str, float | None]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0

    def get(self) -> str:
        """The cached token, or a new one when there is none or it is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._renew_at:
                token, lifetime = self._fetch()
                margin = 0.0 if lifetime is None else min(TOKEN_EXPIRY_MARGIN, lifetime / 2)
                self._renew_at = float("inf") if lifetime is None else self._clock() + lifetime - margin
                self._token = token
            return self._token

    def discard(self, token: str) -> None:
        """
        Forget ``token`` (the API refused it), unless another thread already replaced it.

        :param token: the token the API answered 401 to
        """
        with self._lock:
            if self._token == token:
                self._token = None
