"""The aiohttp application of the scheduler: every /v2 route, the leader proxy, and the UI when installed."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from mesolite.marathon.api import apps, deployments, events, groups, info, queue, tasks
from mesolite.marathon.api.context import SERVICE
from mesolite.marathon.api.errors import error_middleware

if TYPE_CHECKING:
    from mesolite.marathon.service import MarathonService

log = logging.getLogger(__name__)


def create_http_app(service: MarathonService) -> web.Application:
    from mesolite.marathon.leadership import add_leader_header, leader_proxy_middleware

    application = web.Application(middlewares=[leader_proxy_middleware, error_middleware], client_max_size=16 * 1024**2)
    application[SERVICE] = service
    application.on_response_prepare.append(add_leader_header)
    for module in (apps, tasks, deployments, groups, queue, events, info):
        module.add_routes(application.router)
    try:
        from mesolite.ui.routes import add_marathon_ui
    except ImportError:  # a build without the UI: the API alone
        log.info("the Marathon UI is not installed; serving the API only")
    else:
        add_marathon_ui(application)
    return application
