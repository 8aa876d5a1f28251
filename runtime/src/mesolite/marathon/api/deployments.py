"""/v2/deployments: the running deployments; DELETE rolls one back (force=true only stops it)."""

from __future__ import annotations

from aiohttp import web

from mesolite.marathon.api.context import flag, marathon_of
from mesolite.marathon.api.views import deployment_json, deployment_reference


async def list_deployments(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    deployments = sorted(marathon.deployments.values(), key=lambda d: d.version)
    return web.json_response([deployment_json(d, marathon) for d in deployments])


async def delete_deployment(request: web.Request) -> web.Response:
    rollback = await marathon_of(request).rollback(request.match_info["deployment_id"], force=flag(request, "force"))
    if rollback is None:
        return web.Response(status=202)
    return web.json_response(deployment_reference(rollback), headers={"Marathon-Deployment-Id": rollback.id})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/deployments", list_deployments)
    router.add_delete("/v2/deployments/{deployment_id}", delete_deployment)
