"""Masking secrets, fragments of them and the URL's sensitive parts in text from outside."""

from __future__ import annotations

import pytest

from airflow_outamation.redaction import Scrubber, secret_variants, url_secrets

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PAYLOAD = SECRET.removeprefix("whsec_")


def test_secret_variants() -> None:
    assert secret_variants(SECRET) == [SECRET, PAYLOAD]
    assert secret_variants("plain text secret") == ["plain text secret"]


@pytest.mark.parametrize(
    "text",
    [
        f"echo {SECRET}",
        f"key {PAYLOAD} rejected",
        f"hint: {PAYLOAD[7:15]}...",
        f"truncated {PAYLOAD[:12]}",
        f"tail {PAYLOAD[-9:]}",
    ],
)
def test_secret_and_runs_of_eight_of_its_characters_are_masked(text: str) -> None:
    scrubbed = Scrubber(secret_variants(SECRET))(text)
    assert "***" in scrubbed
    assert not any(PAYLOAD[i : i + 8] in scrubbed for i in range(len(PAYLOAD) - 7))


def test_shorter_runs_and_ordinary_text_are_kept() -> None:
    scrub = Scrubber(secret_variants(SECRET))
    assert scrub(f"HTTP 400: id {PAYLOAD[3:10]} unknown") == f"HTTP 400: id {PAYLOAD[3:10]} unknown"


def test_overlapping_fragments_become_one_mask() -> None:
    assert Scrubber(["abcdefghijkl"])("x abcdefghij y") == "x *** y"


def test_url_secrets() -> None:
    found = url_secrets("https://probe:hunter2%21@api.example.com/p?api_key=a%2Bb%20c1&v=2#frag-ment")
    for part in (
        "api_key=a%2Bb%20c1&v=2",
        "a%2Bb%20c1",
        "a+b c1",
        "probe:hunter2%21",
        "hunter2!",
        "frag-ment",
    ):
        assert part in found
    assert "2" not in found  # too short to mask without garbling text
    assert url_secrets("https://api.example.com/process") == []


def test_short_secrets_are_not_masked() -> None:
    assert Scrubber(["x", "1234"])("Max retries exceeded 1234") == "Max retries exceeded 1234"
