"""Untrusted HTTP request bodies turned into JSON values, or a 4xx that says what is wrong — never a 500.

The master, the agent and Marathon all read JSON from anyone who can reach their port. Python's `json`
module alone answers hostile input badly: 10,000 nested brackets raise RecursionError, a 400-digit integer
parses and later overflows whatever converts it, `NaN`/`Infinity` are accepted although JSON has neither,
and `request.text()` raises LookupError on an unknown charset. `decode_json` closes each of those doors.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

# Deeper than any Mesos call or Marathon definition needs (a group tree of ~30 levels is already absurd).
MAX_JSON_DEPTH = 64
# Protobuf's largest integers (uint64) have 20 digits; nothing we store needs more.
MAX_INTEGER_DIGITS = 20
JSON_CONTENT_TYPES = ("application/json",)
UTF8_CHARSETS = (None, "utf-8", "utf8", "us-ascii", "ascii")


class JsonInputError(ValueError):
    """The body is not acceptable JSON; `status` is the HTTP status to answer with (400, 413 or 415)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _parse_integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise JsonInputError(f"integer with {len(text.lstrip('-'))} digits is out of range")
    return int(text)


def _reject_constant(name: str) -> Any:
    raise JsonInputError(f"'{name}' is not a JSON value")


def _depth(value: Any) -> int:
    """Nesting depth of arrays and objects, computed without recursion."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        current, depth = pending.pop()
        if isinstance(current, dict):
            children = current.values()
        elif isinstance(current, list):
            children = current
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        pending.extend((child, depth + 1) for child in children)
    return deepest


def decode_json(body: bytes, charset: str | None = None, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse `body` as UTF-8 JSON; `JsonInputError` with the reason otherwise."""
    if charset is not None and charset.lower() not in UTF8_CHARSETS:
        raise JsonInputError(f"unsupported charset '{charset}': send UTF-8 JSON", status=415)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise JsonInputError(f"body is not valid UTF-8 (byte {error.start})") from None
    try:
        value = json.loads(text, parse_int=_parse_integer, parse_constant=_reject_constant)
    except RecursionError:
        raise JsonInputError(f"JSON nested deeper than {max_depth} levels") from None
    except JsonInputError:
        raise
    except ValueError as error:
        raise JsonInputError(f"invalid JSON: {error}") from None
    if _depth(value) > max_depth:
        raise JsonInputError(f"JSON nested deeper than {max_depth} levels")
    return value


def is_json_content_type(request: web.BaseRequest) -> bool:
    """Whether the request says its body is JSON (`application/json` or a `+json` type)."""
    content_type = request.content_type.lower()
    return content_type in JSON_CONTENT_TYPES or content_type.endswith("+json")


async def read_json(request: web.BaseRequest, require_json_content_type: bool = False) -> Any:
    """The request's body as JSON; `JsonInputError` (status 400, 413 or 415) when it is not acceptable.

    The body size is bounded by the application's `client_max_size` (413 past it). With
    `require_json_content_type`, a body sent as anything but JSON is refused with 415: a browser can send
    `text/plain` or a form across sites without a preflight, but never `application/json`.
    """
    if require_json_content_type and not is_json_content_type(request):
        raise JsonInputError(
            f"Content-Type '{request.content_type}' is not supported: send application/json", status=415
        )
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge as error:
        raise JsonInputError(f"request body too large: {error.text}", status=413) from None
    return decode_json(body, request.charset)
