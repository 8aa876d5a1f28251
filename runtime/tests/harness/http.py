"""Reading a service's JSON in synchronous tests."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request


def get_json(url: str, timeout: float = 10, ssl_context: ssl.SSLContext | None = None, **query: object):
    """GET `url` (with `query` as its query string) and decode the JSON it answers."""
    if query:
        url += "?" + urllib.parse.urlencode(query)
    with urllib.request.urlopen(url, timeout=timeout, context=ssl_context) as response:
        return json.load(response)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 307 is an answer to look at, not to follow
        return None


def http(
    method: str,
    url: str,
    body: object = None,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 15,
    follow_redirects: bool = True,
    ssl_context: ssl.SSLContext | None = None,
) -> tuple[int, dict[str, str], object]:
    """(status, headers, parsed JSON or text) of one request with a JSON `body` (or `raw` bytes); never raises for
    HTTP errors, and answers status 0 (with the error's text) when nothing answered."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    handlers: list[urllib.request.BaseHandler] = [urllib.request.HTTPSHandler(context=ssl_context)]
    if not follow_redirects:
        handlers.append(_NoRedirect())
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout) as response:
            status, response_headers, text = response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        status, response_headers, text = error.code, dict(error.headers), error.read().decode(errors="replace")
    except OSError as error:
        return 0, {}, str(error)
    try:
        return status, response_headers, json.loads(text) if text else None
    except ValueError:
        return status, response_headers, text
