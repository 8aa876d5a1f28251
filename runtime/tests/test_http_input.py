"""Hostile request bodies become a JsonInputError with a 4xx status and a reason, never another exception."""

from __future__ import annotations

import pytest

from mesolite.http_input import MAX_JSON_DEPTH, JsonInputError, decode_json


@pytest.mark.parametrize(
    ("body", "charset", "status", "reason"),
    [
        (b"\xff\xfe{}", None, 400, "not valid UTF-8"),
        (b"{}", "klingon", 415, "unsupported charset"),
        (b"[" * 10_000 + b"]" * 10_000, None, 400, "nested deeper"),
        (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), None, 400, "nested deeper"),
        (b'{"a": ' + b"9" * 400 + b"}", None, 400, "400 digits"),
        (b'{"a": NaN}', None, 400, "'NaN' is not a JSON value"),
        (b'{"a": -Infinity}', None, 400, "is not a JSON value"),
        (b'{"a": ', None, 400, "invalid JSON"),
        (b"", None, 400, "invalid JSON"),
    ],
)
def test_hostile_bodies_are_refused_with_a_reason(body, charset, status, reason):
    with pytest.raises(JsonInputError) as raised:
        decode_json(body, charset)
    assert raised.value.status == status
    assert reason in str(raised.value)


def test_ordinary_json_passes_unchanged():
    body = '{"id": "/web", "cpus": 0.5, "instances": 18446744073709551615, "labels": {"é": "ü"}}'.encode()
    assert decode_json(body, "UTF-8") == {
        "id": "/web",
        "cpus": 0.5,
        "instances": 18446744073709551615,
        "labels": {"é": "ü"},
    }


def test_nesting_up_to_the_limit_is_accepted():
    depth = MAX_JSON_DEPTH
    assert decode_json(b"[" * depth + b"]" * depth) is not None
