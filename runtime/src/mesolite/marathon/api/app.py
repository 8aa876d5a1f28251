"""The aiohttp application of the scheduler: every /v2 route, the leader proxy, and the UI.

The middlewares, outermost first: HTTP Basic on every route when `--http_credentials` is set (as Marathon,
nothing stays open), the browser checks of state-changing requests (`request_limits`), the leader proxy
(non-leaders forward /v2 to the leader, credentials included), and the translation of domain errors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from mesolite.marathon.api import apps, deployments, event_subscriptions, events, groups, info, queue, tasks
from mesolite.marathon.api.context import SERVICE
from mesolite.marathon.api.errors import error_middleware
from mesolite.marathon.api.proxy import add_leader_header, leader_proxy_middleware
from mesolite.marathon.api.request_limits import body_limit, state_changing_request_middleware, url_limit
from mesolite.marathon.record_size import DEFAULT_MAX_NODE_SIZE
from mesolite.security.authentication import BasicAuthenticator, authentication_middleware
from mesolite.ui.routes import add_marathon_ui

if TYPE_CHECKING:
    from mesolite.marathon.service import MarathonService


def create_http_app(service: MarathonService) -> web.Application:
    max_node_size = getattr(service.flags, "zk_max_node_size", DEFAULT_MAX_NODE_SIZE)
    middlewares = [state_changing_request_middleware, leader_proxy_middleware, error_middleware]
    security = getattr(service, "security", None)
    if security is not None and security.credentials:
        realm = security.realm
        authenticator = BasicAuthenticator(security.credentials)
        middlewares.insert(0, authentication_middleware(authenticator, lambda request: realm, json_body=True))
    application = web.Application(
        middlewares=middlewares,
        client_max_size=body_limit(max_node_size),
        handler_args={"max_line_size": url_limit(max_node_size)},
    )
    application[SERVICE] = service
    application.on_response_prepare.append(add_leader_header)
    for module in (apps, tasks, deployments, groups, queue, events, event_subscriptions, info):
        module.add_routes(application.router)
    add_marathon_ui(application)
    return application
