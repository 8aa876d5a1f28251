"""/v2/groups: the group tree; POST/PUT a group with its apps (one deployment); DELETE a group."""

from __future__ import annotations

from aiohttp import web

from mesolite.marathon.api.context import flag, json_body, marathon_of
from mesolite.marathon.api.views import deployment_reference, group_json, parse_embeds
from mesolite.marathon.core import NotFound
from mesolite.marathon.paths import ROOT, PathError, canonical_path


def _group_id(request: web.Request) -> str:
    raw = request.match_info.get("group_id", "")
    try:
        return canonical_path(raw) if raw.strip("/") else ROOT
    except PathError as error:
        raise NotFound(f"Group '{raw}' does not exist ({error})") from None


async def show_group(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    group_id = _group_id(request)
    if group_id not in marathon.group_ids():
        raise NotFound(f"Group '{group_id}' does not exist")
    embeds = parse_embeds(request.query.getall("embed", []), {"counts", "deployments"})
    return web.json_response(group_json(marathon, group_id, embeds))


async def create_group(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    body = await json_body(request)
    parent = _group_id(request)
    if isinstance(body, dict) and parent != ROOT:
        body = {**body, "id": canonical_path(body.get("id", ""), parent)}
    deployment = await marathon.put_group(body, force=flag(request, "force"))
    return web.json_response(
        deployment_reference(deployment), status=201, headers={"Marathon-Deployment-Id": deployment.id}
    )


async def update_group(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    body = await json_body(request)
    deployment = await marathon.put_group(body, group_id=_group_id(request), force=flag(request, "force"))
    return web.json_response(deployment_reference(deployment), headers={"Marathon-Deployment-Id": deployment.id})


async def delete_group(request: web.Request) -> web.Response:
    deployment = await marathon_of(request).delete_group(_group_id(request), force=flag(request, "force"))
    return web.json_response(deployment_reference(deployment), headers={"Marathon-Deployment-Id": deployment.id})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/groups", show_group)
    router.add_post("/v2/groups", create_group)
    router.add_put("/v2/groups", update_group)
    router.add_get("/v2/groups/{group_id:.+}", show_group)
    router.add_post("/v2/groups/{group_id:.+}", create_group)
    router.add_put("/v2/groups/{group_id:.+}", update_group)
    router.add_delete("/v2/groups/{group_id:.+}", delete_group)
