"""/v2/groups: the group tree; POST/PUT a group with its apps (one deployment); DELETE a group."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mesolite.marathon.api.context import flag, json_body, marathon_of, max_node_size
from mesolite.marathon.api.views import deployment_reference, group_json, parse_embeds
from mesolite.marathon.group_definition import parse_group
from mesolite.marathon.marathon import NotFound
from mesolite.marathon.paths import ROOT, PathError, canonical_path
from mesolite.marathon.record_size import check_change_fits


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


def _checked_group(request: web.Request, body: Any, group_id: str | None, parent: str = ROOT) -> str:
    """The group's id once every field of `body` is valid and every record it writes fits; 422 otherwise."""
    marathon = marathon_of(request)
    tree = parse_group(body, group_id, parent, existing=marathon.group_ids())
    apps, where = tree.normalized_apps()
    original = {app_id: marathon.apps.get(app_id) for app_id in apps}
    check_change_fits(original, apps, max_node_size(request), where, groups=tree.groups.values())
    return tree.group_id


async def create_group(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    body = await json_body(request)
    parent = _group_id(request)
    group_id = _checked_group(request, body, None, parent)
    if parent != ROOT:
        body = {**body, "id": group_id}
    deployment = await marathon.put_group(body, force=flag(request, "force"))
    return web.json_response(
        deployment_reference(deployment), status=201, headers={"Marathon-Deployment-Id": deployment.id}
    )


async def update_group(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    body = await json_body(request)
    group_id = _group_id(request)
    _checked_group(request, body, group_id)
    deployment = await marathon.put_group(body, group_id=group_id, force=flag(request, "force"))
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
