"""Which 2xx answers accept a batch."""

from __future__ import annotations

import json

import pytest

from airflow_outamation.api_answers import ExpectedAnswer, media_type
from airflow_outamation.get_provider_info import get_provider_info

ACK = json.dumps({"status": "accepted", "id": "msg_1"})


def test_default_wants_json() -> None:
    expected = ExpectedAnswer()
    assert expected.problem("application/json; charset=utf-8", ACK) is None
    assert expected.problem("Application/JSON", ACK) is None
    assert expected.problem("text/html", "<html>") == "expected content type application/json"
    assert expected.problem(None, "") == "expected content type application/json"
    assert expected.problem("application/json", "<html>") == "the body is not valid JSON"


def test_json_keys() -> None:
    expected = ExpectedAnswer.from_extras(None, "status, id")
    assert expected == ExpectedAnswer("application/json", ("status", "id"))
    assert expected.problem("application/json", ACK) is None
    assert expected.problem("application/json", '{"status": "ok"}') == "the JSON object lacks key(s) id"
    assert expected.problem("application/json", "[1]") == "expected a JSON object with key(s) status, id"
    assert ExpectedAnswer.from_extras(None, ["id"]).json_keys == ("id",)


@pytest.mark.parametrize("content_type", ["*", "", " * "])
def test_any_content_type_accepts_an_empty_answer(content_type: str) -> None:
    expected = ExpectedAnswer.from_extras(content_type, None)
    assert expected.problem(None, "") is None
    assert expected.problem("text/plain", "OK") is None


def test_other_media_types() -> None:
    assert ExpectedAnswer("application/vnd.api+json").problem("application/vnd.api+json", "x") is not None
    assert ExpectedAnswer("text/plain").problem("text/plain", "OK") is None
    with pytest.raises(ValueError, match="expected_content_type must be a media type"):
        ExpectedAnswer("json")
    assert media_type(" text/HTML ; charset=utf-8") == "text/html"


def test_connection_form_offers_the_extras_with_the_hooks_defaults() -> None:
    (conn_type,) = get_provider_info()["connection-types"]
    fields = conn_type["conn-fields"]
    assert fields["expected_content_type"]["schema"]["default"] == ExpectedAnswer().content_type
    assert {"ca_bundle", "expected_json_keys"} <= set(fields)
