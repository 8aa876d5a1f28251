"""HTTP Basic authentication for the services' endpoints, as Mesos's `basic` HTTP authenticator and Marathon's
`--http_credentials` do it.

A service decides, per request, whether the request needs a principal and in which realm (`realm_for`): the
master's scheduler API, its operator endpoints and its agents' endpoints each have their own flag. Services say
what each route is (`Access`) where they add it to their router (`add_route`), so that a new route cannot be
forgotten; `route_access` reads it back for a request (a route nobody classified counts as READ_WRITE). A request that
needs one and has no valid credentials gets 401 with `WWW-Authenticate: Basic realm="..."`; otherwise the handler
runs with `request[PRINCIPAL]` set to the authenticated principal, or None (authorization decides what an
anonymous request may do).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

log = logging.getLogger(__name__)

# The authenticated principal of a request (None: anonymous). aiohttp 3.14 gives request storage typed keys.
PRINCIPAL = web.RequestKey("principal", str | None)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Access(enum.Enum):
    """What a route does, hence which flag closes it."""

    OPEN = "open"  # left open as Mesos leaves it (health, version, redirects, UI pages)
    READ_ONLY = "read-only"  # views: --authenticate_http_readonly
    READ_WRITE = "read-write"  # changes: --authenticate_http_readwrite
    FRAMEWORK = "framework"  # the scheduler API: --authenticate_frameworks / --authenticate_http_frameworks
    AGENT = "agent"  # the agents' calls to the master: --authenticate_agents


# Each application's routes (their resources) with what they are.
ROUTE_ACCESS = web.AppKey("route_access", dict)


def add_route(app: web.Application, method: str, path: str, handler: Handler, access: Access) -> web.AbstractRoute:
    """Add a route to `app`'s router together with what it is."""
    route = app.router.add_get(path, handler) if method == "GET" else app.router.add_route(method, path, handler)
    classify(app, route.resource, access)
    return route


def classify(app: web.Application, resource: web.AbstractResource | None, access: Access) -> None:
    """Record what a route added by other means (e.g. static files) is."""
    if ROUTE_ACCESS not in app:
        app[ROUTE_ACCESS] = {}
    app[ROUTE_ACCESS][resource] = access


def route_access(request: web.Request) -> Access | None:
    """What the request's route is; None when no route matched (a 404 or 405 reveals nothing)."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return request.app.get(ROUTE_ACCESS, {}).get(resource, Access.READ_WRITE)


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
