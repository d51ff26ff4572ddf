"""The GitHub, Stripe and Slack signing presets, checked against each vendor's own code (PyPI packages)."""

from __future__ import annotations

import json
import time

import pytest
import stripe
from gidgethub import ValidationFailure
from gidgethub.sansio import Event
from slack_sdk.signature import SignatureVerifier

from airflow_outamation.signing import (
    GITHUB,
    SLACK,
    STRIPE,
    UNSIGNED,
    SignatureError,
    SigningScheme,
    sign,
    verify,
)

BODY = json.dumps({"files": [{"filename": "a.pdf", "backup_path": "/in_progress/a.pdf"}]}).encode()
#: Stripe's endpoint secrets look like Standard Webhooks' but are used as text, not base64-decoded.
STRIPE_SECRET = "whsec_" + "c2VjcmV0IGtleSBmb3Igc3RyaXBl"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PRESETS = [SigningScheme(GITHUB), SigningScheme(STRIPE), SigningScheme(SLACK)]


def github_event(headers: dict[str, str], body: bytes, secret: str) -> Event:
    """Parse a delivery as a GitHub App does with ``gidgethub`` (which checks the signature)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    lowered |= {"content-type": "application/json", "x-github-event": "ping"}
    return Event.from_http(lowered, body, secret=secret)


def test_github_signature_is_githubs_documented_example() -> None:
    """GitHub's docs: secret "It's a Secret to Everybody", payload "Hello, World!" sign as below."""
    headers = sign("msg_1", b"Hello, World!", "It's a Secret to Everybody", scheme=SigningScheme(GITHUB))
    assert headers["X-Hub-Signature-256"] == (
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    )


def test_gidgethub_accepts_our_github_signature_and_refuses_a_tampered_body() -> None:
    headers = sign("msg_1", BODY, "github secret", scheme=SigningScheme(GITHUB))
    event = github_event(headers, BODY, "github secret")
    assert event.delivery_id == "msg_1"
    assert event.data == json.loads(BODY)
    with pytest.raises(ValidationFailure):
        github_event(headers, BODY.replace(b"a.pdf", b"b.pdf"), "github secret")


def test_stripe_accepts_our_stripe_signature_and_refuses_another_secret() -> None:
    headers = sign("msg_1", BODY, STRIPE_SECRET, scheme=SigningScheme(STRIPE))
    header = headers["Stripe-Signature"]
    assert stripe.WebhookSignature.verify_header(BODY.decode(), header, STRIPE_SECRET, tolerance=300)
    with pytest.raises(stripe.error.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(BODY.decode(), header, "whsec_other", tolerance=300)


def test_stripe_refuses_our_stale_stripe_signature() -> None:
    stale = int(time.time()) - 301
    headers = sign("msg_1", BODY, STRIPE_SECRET, timestamp=stale, scheme=SigningScheme(STRIPE))
    with pytest.raises(stripe.error.SignatureVerificationError, match="tolerance"):
        stripe.WebhookSignature.verify_header(BODY.decode(), headers["Stripe-Signature"], STRIPE_SECRET, 300)


def test_slack_sdk_accepts_our_slack_signature_and_refuses_a_tampered_body() -> None:
    headers = sign("msg_1", BODY, SLACK_SECRET, scheme=SigningScheme(SLACK))
    verifier = SignatureVerifier(SLACK_SECRET)
    assert verifier.is_valid_request(BODY, headers)
    assert not verifier.is_valid_request(BODY + b" ", headers)


def test_we_verify_what_stripe_signs() -> None:
    now = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{now}.{BODY.decode()}", STRIPE_SECRET)
    headers = {"Stripe-Signature": f"t={now},v1=00ff,v1={signature}", "X-Webhook-Id": "msg_s"}
    assert verify(headers, BODY, STRIPE_SECRET, scheme=SigningScheme(STRIPE)) == "msg_s"
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(headers, BODY, "whsec_other", scheme=SigningScheme(STRIPE))


def test_we_verify_what_slack_signs() -> None:
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SLACK_SECRET).generate_signature(timestamp=timestamp, body=BODY)
    assert signature is not None
    headers = {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": timestamp, "X-Webhook-Id": "m"}
    assert verify(headers, BODY, SLACK_SECRET, scheme=SigningScheme(SLACK)) == "m"


@pytest.mark.parametrize("scheme", PRESETS, ids=lambda s: s.name)
def test_presets_round_trip_and_reject_tampering(scheme: SigningScheme) -> None:
    headers = sign("msg_1", BODY, STRIPE_SECRET, timestamp=1_750_000_000, scheme=scheme)
    assert verify(headers, BODY, STRIPE_SECRET, scheme=scheme, now=1_750_000_000) == "msg_1"
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(headers, BODY + b" ", STRIPE_SECRET, scheme=scheme, now=1_750_000_000)


@pytest.mark.parametrize("scheme", [SigningScheme(STRIPE), SigningScheme(SLACK)], ids=lambda s: s.name)
def test_timestamped_presets_reject_stale_requests(scheme: SigningScheme) -> None:
    headers = sign("msg_1", BODY, SLACK_SECRET, timestamp=1_750_000_000, scheme=scheme)
    with pytest.raises(SignatureError, match="more than 300 s old"):
        verify(headers, BODY, SLACK_SECRET, scheme=scheme, now=1_750_000_301)


def test_unsigned_scheme_sends_only_the_message_id() -> None:
    scheme = SigningScheme(UNSIGNED)
    headers = sign("msg_1", BODY, "", scheme=scheme)
    assert headers == {"X-Webhook-Id": "msg_1"}
    assert verify(headers, BODY, "", scheme=scheme) == "msg_1"
