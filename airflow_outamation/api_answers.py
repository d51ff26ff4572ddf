"""
What a 2xx answer of the document API must look like to count as accepted (pure, no I/O).

A proxy's login page or a captive portal answers 200 too: only an answer of the expected content
type (and, optionally, a JSON object with the expected keys) means the API took the batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DEFAULT_CONTENT_TYPE = "application/json"
ANY_CONTENT_TYPE = "*"


def media_type(content_type: str | None) -> str:
    """
    Return the media type of a ``Content-Type`` header, lower-case, without parameters.

    :param content_type: the header's value, if any
    """
    return (content_type or "").partition(";")[0].strip().lower()


@dataclass(frozen=True)
class ExpectedAnswer:
    """
    The content type, and optionally the JSON keys, of an answer that accepts a batch.

    :param content_type: media type the answer must have; ``*`` or empty accepts any answer, even none
    :param json_keys: keys the answer's JSON object must hold
    """

    content_type: str = DEFAULT_CONTENT_TYPE
    json_keys: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.accepts_any_content_type and "/" not in self.content_type:
            raise ValueError(
                f"expected_content_type must be a media type such as {DEFAULT_CONTENT_TYPE} "
                f"or {ANY_CONTENT_TYPE!r}, got {self.content_type!r}"
            )

    @classmethod
    def from_extras(cls, content_type: Any, json_keys: Any) -> ExpectedAnswer:
        """
        Build the expectation from connection extras.

        :param content_type: ``expected_content_type``; ``None`` (not set) means ``application/json``
        :param json_keys: ``expected_json_keys``: a list of keys or a comma-separated string
        """
        if isinstance(json_keys, str):
            json_keys = json_keys.split(",")
        keys = tuple(str(key).strip() for key in json_keys or () if str(key).strip())
        if content_type is None:
            return cls(json_keys=keys)
        return cls(str(content_type).strip(), keys)

    @property
    def accepts_any_content_type(self) -> bool:
        """Whether any content type, or none (an empty 204), is accepted."""
        return self.content_type.strip() in ("", ANY_CONTENT_TYPE)

    @property
    def expects_json(self) -> bool:
        """Whether the body must parse as JSON."""
        expected = media_type(self.content_type)
        return bool(self.json_keys) or expected == DEFAULT_CONTENT_TYPE or expected.endswith("+json")

    def problem(self, content_type: str | None, body: str) -> str | None:
        """
        Say why an answer does not accept the batch, or return ``None`` when it does.

        :param content_type: the answer's ``Content-Type`` header, if any
        :param body: the answer's body as text
        """
        if not self.accepts_any_content_type and media_type(content_type) != media_type(self.content_type):
            return f"expected content type {self.content_type}"
        if not self.expects_json:
            return None
        try:
            document = json.loads(body)
        except ValueError:
            return "the body is not valid JSON"
        except RecursionError:  # valid JSON perhaps, but nested deeper than any acceptance is
            return "the body is not valid JSON (nested too deeply to read)"
        if not self.json_keys:
            return None
        if not isinstance(document, dict):
            return f"expected a JSON object with key(s) {', '.join(self.json_keys)}"
        missing = [key for key in self.json_keys if key not in document]
        return f"the JSON object lacks key(s) {', '.join(missing)}" if missing else None
