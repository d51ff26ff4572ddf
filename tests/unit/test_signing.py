"""Signing and verification, and interoperability with the reference ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from airflow_outamation.signing import (
    HEX_HMAC,
    SignatureError,
    SigningScheme,
    file_identity,
    message_id,
    secret_key,
    sign,
    verify,
)

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
BODY = json.dumps({"files": [{"filename": "a.pdf", "backup_path": "/in_progress/a.pdf"}]}).encode()
NOW = 1_750_000_000
HEX = SigningScheme(HEX_HMAC, signature_header="X-Outamation-Signature")


@pytest.mark.parametrize("scheme", [SigningScheme(), HEX], ids=["standard-webhooks", "hex-hmac"])
def test_signed_request_verifies_and_returns_its_id(scheme: SigningScheme) -> None:
    headers = sign("msg_1", BODY, SECRET, timestamp=NOW, scheme=scheme)
    assert verify(headers, BODY, SECRET, scheme=scheme, now=NOW) == "msg_1"


def test_header_names_are_case_insensitive() -> None:
    headers = {k.upper(): v for k, v in sign("msg_1", BODY, SECRET, timestamp=NOW).items()}
    assert verify(headers, BODY, SECRET, now=NOW) == "msg_1"


def test_hex_scheme_uses_the_configured_header_and_hex_over_timestamp_and_body() -> None:
    headers = sign("msg_1", BODY, "plain secret", timestamp=NOW, scheme=HEX)
    expected = hmac.new(b"plain secret", f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers["X-Outamation-Signature"] == f"sha256={expected}"
    assert headers["X-Webhook-Timestamp"] == str(NOW)
    assert headers["X-Webhook-Id"] == "msg_1"


@pytest.mark.parametrize("scheme", [SigningScheme(), HEX], ids=["standard-webhooks", "hex-hmac"])
def test_tampered_body_is_rejected(scheme: SigningScheme) -> None:
    headers = sign("msg_1", BODY, SECRET, timestamp=NOW, scheme=scheme)
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(headers, BODY.replace(b"a.pdf", b"b.pdf"), SECRET, scheme=scheme, now=NOW)


def test_tampered_id_is_rejected() -> None:
    headers = sign("msg_1", BODY, SECRET, timestamp=NOW)
    headers["webhook-id"] = "msg_2"
    with pytest.raises(SignatureError, match="no signature matches"):
        verify(headers, BODY, SECRET, now=NOW)


def test_wrong_secret_is_rejected() -> None:
    headers = sign("msg_1", BODY, SECRET, timestamp=NOW)
    with pytest.raises(SignatureError):
        verify(headers, BODY, "another secret", now=NOW)


@pytest.mark.parametrize(("offset", "message"), [(-301, "old"), (301, "future")], ids=["stale", "future"])
def test_timestamps_outside_tolerance_are_rejected(offset: int, message: str) -> None:
    headers = sign("msg_1", BODY, SECRET, timestamp=NOW + offset)
    with pytest.raises(SignatureError, match=message):
        verify(headers, BODY, SECRET, now=NOW)
    assert verify(headers, BODY, SECRET, tolerance=301, now=NOW) == "msg_1"


@pytest.mark.parametrize("value", ["", "12.5", "-5", "soon", "١٢٣"])
def test_malformed_timestamp_is_rejected(value: str) -> None:
    headers = sign("msg_1", BODY, SECRET, timestamp=NOW)
    headers["webhook-timestamp"] = value
    with pytest.raises(SignatureError):
        verify(headers, BODY, SECRET, now=NOW)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected_by_name(header: str) -> None:
    headers = sign("msg_1", BODY, SECRET, timestamp=NOW)
    del headers[header]
    with pytest.raises(SignatureError, match=header):
        verify(headers, BODY, SECRET, now=NOW)


@pytest.mark.parametrize("scheme", [SigningScheme(), HEX], ids=["standard-webhooks", "hex-hmac"])
def test_rotation_header_with_several_signatures_matches_any(scheme: SigningScheme) -> None:
    old = sign("msg_1", BODY, "old secret", timestamp=NOW, scheme=scheme)
    new = sign("msg_1", BODY, SECRET, timestamp=NOW, scheme=scheme)
    name = scheme.signature_header_name
    rotated = {**new, name: f"v2,ignored garbage {old[name]} {new[name]}"}
    assert verify(rotated, BODY, SECRET, scheme=scheme, now=NOW) == "msg_1"
    assert verify(rotated, BODY, "old secret", scheme=scheme, now=NOW) == "msg_1"
    with pytest.raises(SignatureError):
        verify(rotated, BODY, "third secret", scheme=scheme, now=NOW)


def test_secret_keys() -> None:
    assert secret_key("plain") == b"plain"
    assert secret_key("whsec_" + base64.b64encode(b"raw key").decode()) == b"raw key"
    assert secret_key("whsec_" + base64.b64encode(b"raw key").decode().rstrip("=")) == b"raw key"
    for bad in ("", "whsec_", "whsec_not*base64"):
        with pytest.raises(ValueError, match="secret") as excinfo:
            secret_key(bad)
        assert "not*base64" not in str(excinfo.value)


def test_unknown_scheme_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown signature scheme"):
        SigningScheme("md5")


def test_message_id_depends_on_content_only() -> None:
    payload = {"files": [{"filename": "a.pdf", "backup_path": "/p/a.pdf"}], "source": "sftp"}
    reordered = {"source": "sftp", "files": [{"backup_path": "/p/a.pdf", "filename": "a.pdf"}]}
    assert message_id(payload) == message_id(reordered)
    assert message_id(payload).startswith("msg_")
    assert message_id(payload) != message_id({**payload, "source": "manual"})


SCAN = {"filename": "scan.pdf", "backup_path": "/in_progress/11252026/scan.pdf"}
SCAN_PAYLOAD = {"files": [SCAN], "source": "sftp"}


def test_message_id_covers_each_files_size_and_mtime() -> None:
    claimed = [{**SCAN, "size": 1000, "mtime": 1764000000.25}]
    same = message_id(SCAN_PAYLOAD, [dict(claimed[0])])
    assert message_id(SCAN_PAYLOAD, claimed) == same
    assert message_id(SCAN_PAYLOAD, [{**claimed[0], "size": 1001}]) != same
    assert message_id(SCAN_PAYLOAD, [{**claimed[0], "mtime": 1764000000.5}]) != same
    assert message_id({**SCAN_PAYLOAD, "source": "manual"}, claimed) != same


def test_message_id_follows_the_files_order() -> None:
    first, second = {**SCAN, "size": 1}, {**SCAN, "filename": "b.pdf", "size": 2}
    payload = {"files": [SCAN, {**SCAN, "filename": "b.pdf"}]}
    assert message_id(payload, [first, second]) != message_id(payload, [second, first])


def test_message_id_without_identities_is_the_payloads_id() -> None:
    """Claims made before size and mtime were recorded keep the ids they were sent under."""
    expected = (
        "msg_"
        + hashlib.sha256(
            json.dumps(SCAN_PAYLOAD, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()[:32]
    )
    assert message_id(SCAN_PAYLOAD) == expected
    assert message_id(SCAN_PAYLOAD, [SCAN]) == expected
    assert message_id(SCAN_PAYLOAD, [{**SCAN, "size": 5}]) != expected
    first = {**SCAN, "size": 5, "manifest_id": "ingest__run1", "index": 0}
    assert message_id(SCAN_PAYLOAD, [first]) == message_id(SCAN_PAYLOAD, [dict(first)])
    assert message_id(SCAN_PAYLOAD, [first]) != message_id(SCAN_PAYLOAD, [{**first, "manifest_id": "r2"}])


def test_file_identity() -> None:
    assert file_identity(SCAN) is None
    assert file_identity({**SCAN, "size": 5, "mtime": 1764000000}) == [5, 1764000000.0]
    assert file_identity({**SCAN, "mtime": 1.5}) == [None, 1.5]
    claimed = {**SCAN, "size": 5, "mtime": 1764000000, "manifest_id": "ingest__run1", "index": 3}
    assert file_identity(claimed) == ["ingest__run1", 3, 5, 1764000000.0]
    assert file_identity({**claimed, "index": None}) == [5, 1764000000.0]  # claimed by 0.3
    with pytest.raises(ValueError, match=r"size of 'scan\.pdf' must be an integer"):
        file_identity({**SCAN, "size": "5"})
    with pytest.raises(ValueError, match=r"mtime of 'scan\.pdf' must be a number"):
        file_identity({**SCAN, "size": 5, "mtime": True})


def test_reference_package_verifies_our_signature() -> None:
    now = int(datetime.now(timezone.utc).timestamp())
    headers = sign("msg_interop", BODY, SECRET, timestamp=now)
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)


def test_reference_package_rejects_our_signature_over_another_body() -> None:
    headers = sign("msg_interop", BODY, SECRET)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY + b" ", headers)


def test_we_verify_the_reference_packages_signature() -> None:
    moment = datetime.now(timezone.utc)
    signature = Webhook(SECRET).sign("msg_ref", moment, BODY.decode())
    headers = {
        "webhook-id": "msg_ref",
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signature,
    }
    assert verify(headers, BODY, SECRET) == "msg_ref"
    with pytest.raises(SignatureError):
        verify({**headers, "webhook-id": "msg_other"}, BODY, SECRET)
