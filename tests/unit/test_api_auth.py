"""Reading a connection's API key or OAuth2 settings, and caching a bearer token until it expires."""

from __future__ import annotations

import pytest

from airflow_outamation.hooks.api_auth import API_KEY, NO_AUTH, OAUTH2, ApiAuth, BearerToken


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting_fetch(lifetime: float | None) -> tuple[list[str], BearerToken, Clock]:
    fetched: list[str] = []
    clock = Clock()

    def fetch() -> tuple[str, float | None]:
        fetched.append(f"token-{len(fetched)}")
        return fetched[-1], lifetime

    return fetched, BearerToken(fetch, clock), clock


def test_token_is_reused_until_shortly_before_it_expires() -> None:
    fetched, token, clock = counting_fetch(3600)
    assert token.get() == token.get() == "token-0"
    clock.now += 3600 - 31
    assert token.get() == "token-0"
    clock.now += 1
    assert token.get() == "token-1"
    assert fetched == ["token-0", "token-1"]


def test_short_lived_token_is_renewed_after_half_its_lifetime() -> None:
    fetched, token, clock = counting_fetch(10)
    token.get()
    clock.now += 4.9
    token.get()
    clock.now += 0.1
    token.get()
    assert len(fetched) == 2


def test_discarding_the_refused_token_fetches_a_new_one_but_not_twice() -> None:
    fetched, token, _ = counting_fetch(None)
    refused = token.get()
    token.discard(refused)
    assert token.get() == "token-1"
    token.discard(refused)  # a second thread refused the same old token: the new one stays
    assert token.get() == "token-1"
    assert len(fetched) == 2


@pytest.mark.parametrize(
    ("login", "password", "extra", "signs", "expected"),
    [
        (None, "hmac", {}, True, ApiAuth()),
        (None, "hmac", {"auth": "api-key", "api_key": "k" * 8}, True, ApiAuth(API_KEY, api_key="k" * 8)),
        (
            None,
            "key",
            {"auth": "api-key", "api_key_header": "X-Token "},
            False,
            ApiAuth(API_KEY, "key", "X-Token"),
        ),
        (
            "client",
            "secret",
            {"auth": "oauth2", "token_url": "https://idp/token", "scope": "docs"},
            False,
            ApiAuth(
                OAUTH2,
                token_url="https://idp/token",
                client_id="client",
                client_secret="secret",
                scope="docs",
            ),
        ),
    ],
)
def test_auth_settings_from_a_connection(
    login: str | None, password: str, extra: dict[str, str], signs: bool, expected: ApiAuth
) -> None:
    assert ApiAuth.from_connection(login, password, extra, signs) == expected


def test_the_hmac_secret_is_never_taken_for_a_key() -> None:
    with pytest.raises(ValueError, match="needs the key in the extra api_key"):
        ApiAuth.from_connection(None, "hmac secret", {"auth": "api-key"}, signs=True)
    with pytest.raises(ValueError, match="client secret in the extra client_secret"):
        ApiAuth.from_connection("c", "hmac secret", {"auth": "oauth2", "token_url": "https://t"}, signs=True)


def test_credentials_are_secrets_and_not_in_the_repr() -> None:
    auth = ApiAuth(OAUTH2, token_url="https://t", client_id="c", client_secret="client secret")
    assert auth.secrets == ["client secret"]
    assert "client secret" not in repr(auth)
    assert ApiAuth(NO_AUTH).static_headers() == {}
    assert ApiAuth(API_KEY, api_key="k1").static_headers() == {"X-API-Key": "k1"}
