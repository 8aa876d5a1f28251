"""HTTP Basic authentication for the services' endpoints, as Mesos's `basic` HTTP authenticator and Marathon's
`--http_credentials` do it.

A service decides, per request, whether the request needs a principal and in which realm (`realm_for`): the
master's scheduler API, its operator endpoints and its agents' endpoints each have their own flag. A request that
needs one and has no valid credentials gets 401 with `WWW-Authenticate: Basic realm="..."`; otherwise the handler
runs with `request[PRINCIPAL]` set to the authenticated principal, or None (authorization decides what an
anonymous request may do).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

log = logging.getLogger(__name__)

# The authenticated principal of a request (None: anonymous). aiohttp 3.14 gives request storage typed keys.
PRINCIPAL = web.RequestKey("principal", str | None)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def basic_authorization(principal: str, secret: str) -> str:
    """The `Authorization` header value for a client presenting `principal`/`secret`."""
    token = base64.b64encode(f"{principal}:{secret}".encode()).decode("ascii")
    return f"Basic {token}"


class BasicAuthenticator:
    """Checks `Authorization: Basic` headers against known principals and secrets."""

    def __init__(self, credentials: Mapping[str, str]) -> None:
        self._secrets = {principal: secret.encode() for principal, secret in credentials.items()}

    def principal(self, header: str | None) -> str | None:
        """The principal a header proves, or None (absent, malformed, unknown principal or wrong secret)."""
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        principal, separator, secret = decoded.partition(":")
        expected = self._secrets.get(principal)
        # compare_digest: the time taken must not tell how much of a secret was right.
        if not separator or expected is None or not hmac.compare_digest(expected, secret.encode()):
            return None
        return principal


def principal_of(request: web.Request) -> str | None:
    """The principal the authentication middleware found for this request (None: anonymous)."""
    return request.get(PRINCIPAL)


def unauthorized(realm: str, json_body: bool = False) -> web.Response:
    headers = {"WWW-Authenticate": f'Basic realm="{realm}"'}
    if json_body:
        body = json.dumps({"message": "Invalid username or password."})
        return web.Response(status=401, text=body, content_type="application/json", headers=headers)
    return web.Response(status=401, text="401 Unauthorized: valid credentials are required\n", headers=headers)


def authentication_middleware(
    authenticator: BasicAuthenticator,
    realm_for: Callable[[web.Request], str | None],
    json_body: bool = False,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """A middleware that authenticates every request: `realm_for(request)` is the realm of a request that needs a
    principal, None for one that may be anonymous (credentials it carries are still checked and used)."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        principal = authenticator.principal(request.headers.get("Authorization"))
        realm = realm_for(request)
        if realm is not None and principal is None:
            if "Authorization" in request.headers:
                log.info("refused credentials for %s %s from %s", request.method, request.path, request.remote)
            return unauthorized(realm, json_body)
        request[PRINCIPAL] = principal
        return await handler(request)

    return authenticate
