"""/v2/apps: list, create, show, update, delete, restart, tasks and versions of apps."""

from __future__ import annotations

from aiohttp import web

from mesolite.marathon import health
from mesolite.marathon.api.context import flag, json_body, marathon_of, service_of
from mesolite.marathon.api.views import app_json, deployment_reference, parse_embeds
from mesolite.marathon.core import NotFound
from mesolite.marathon.paths import PathError, canonical_path

LIST_DEFAULT_EMBEDS = {"counts", "deployments"}
SHOW_DEFAULT_EMBEDS = {"counts", "deployments", "tasks", "lastTaskFailure", "readiness"}


def app_id_of(request: web.Request) -> str:
    try:
        return canonical_path(request.match_info["app_id"])
    except PathError as error:
        raise NotFound(f"App '{request.match_info['app_id']}' does not exist ({error})") from None


async def list_apps(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    embeds = parse_embeds(request.query.getall("embed", []), LIST_DEFAULT_EMBEDS)
    id_filter = request.query.get("id", "").lower()
    cmd_filter = request.query.get("cmd", "")
    label_filter = request.query.get("label")
    apps = []
    for app_id in sorted(marathon.apps):
        app = marathon.apps[app_id]
        if id_filter and id_filter not in app_id.lower():
            continue
        if cmd_filter and cmd_filter not in (app.get("cmd") or ""):
            continue
        if label_filter and not _labels_match(app.get("labels") or {}, label_filter):
            continue
        apps.append(app_json(marathon, app, embeds))
    return web.json_response({"apps": apps})


def _labels_match(labels: dict, selector: str) -> bool:
    """Marathon's label selector: `key`, `key==value`, `key!=value`, comma-separated (all must hold)."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key.strip()) == value.strip():
                return False
        elif "==" in term:
            key, value = term.split("==", 1)
            if labels.get(key.strip()) != value.strip():
                return False
        elif term not in labels:
            return False
    return True


async def create_app(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    body = await json_body(request)
    app, deployment = await marathon.create_app(body)
    marathon.events.publish("api_post_event", clientIp=request.remote, uri=request.path, appDefinition=app)
    wire = app_json(marathon, app, {"counts", "deployments", "tasks"})
    headers = {
        "Location": f"{service_of(request).base_url(request)}/v2/apps{app['id']}",
        "Marathon-Deployment-Id": deployment.id,
    }
    return web.json_response(wire, status=201, headers=headers)


async def update_apps(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    body = await json_body(request)
    deployment = await marathon.update_apps(
        body, partial=flag(request, "partialUpdate", True), force=flag(request, "force")
    )
    return web.json_response(deployment_reference(deployment), headers={"Marathon-Deployment-Id": deployment.id})


async def show_app(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    app = marathon.app(app_id_of(request))
    embeds = parse_embeds(request.query.getall("embed", []), SHOW_DEFAULT_EMBEDS)
    return web.json_response({"app": app_json(marathon, app, embeds)})


async def update_app(request: web.Request) -> web.Response:
    """PUT and PATCH: a partial update by default (PUT with partialUpdate=false replaces); creates when absent."""
    marathon = marathon_of(request)
    app_id = app_id_of(request)
    body = await json_body(request)
    partial = True if request.method == "PATCH" else flag(request, "partialUpdate", True)
    deployment, created = await marathon.update_app(app_id, body, partial=partial, force=flag(request, "force"))
    marathon.events.publish(
        "api_post_event", clientIp=request.remote, uri=request.path, appDefinition=marathon.apps.get(app_id)
    )
    headers = {"Marathon-Deployment-Id": deployment.id}
    if created:
        headers["Location"] = f"{service_of(request).base_url(request)}/v2/apps{app_id}"
    return web.json_response(deployment_reference(deployment), status=201 if created else 200, headers=headers)


async def delete_app(request: web.Request) -> web.Response:
    deployment = await marathon_of(request).delete_app(app_id_of(request), force=flag(request, "force"))
    return web.json_response(deployment_reference(deployment), headers={"Marathon-Deployment-Id": deployment.id})


async def restart_app(request: web.Request) -> web.Response:
    deployment = await marathon_of(request).restart_app(app_id_of(request), force=flag(request, "force"))
    return web.json_response(deployment_reference(deployment), headers={"Marathon-Deployment-Id": deployment.id})


async def app_tasks(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    app = marathon.app(app_id_of(request))
    checks = health.check_count(app)
    return web.json_response({"tasks": [task.to_json(checks) for task in marathon.tasks_of(app["id"])]})


async def kill_app_tasks(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    app = marathon.app(app_id_of(request))
    host = request.query.get("host")
    ids = [t.id for t in marathon.tasks_of(app["id"]) if host in (None, "", "*") or t.host == host]
    killed, deployment = await marathon.kill_tasks(
        ids, scale=flag(request, "scale"), wipe=flag(request, "wipe"), force=flag(request, "force")
    )
    if deployment is not None:
        return web.json_response(deployment_reference(deployment))
    return web.json_response({"tasks": [task.to_json() for task in killed]})


async def app_task(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    app = marathon.app(app_id_of(request))
    task = _task_of_app(marathon, app["id"], request.match_info["task_id"])
    if request.method == "GET":
        return web.json_response({"task": task.to_json()})
    killed, deployment = await marathon.kill_tasks(
        [task.id], scale=flag(request, "scale"), wipe=flag(request, "wipe"), force=flag(request, "force")
    )
    if deployment is not None:
        return web.json_response(deployment_reference(deployment))
    return web.json_response({"task": killed[0].to_json()})


def _task_of_app(marathon, app_id: str, task_id: str):
    task = marathon.tasks.get(task_id)
    if task is None or task.app_id != app_id:
        raise NotFound(f"Task '{task_id}' does not exist")
    return task


async def app_versions(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    app_id = app_id_of(request)
    marathon.app(app_id)
    return web.json_response({"versions": await marathon.storage.app_versions(app_id)})


async def app_version(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    app_id = app_id_of(request)
    marathon.app(app_id)
    version = await marathon.storage.app_version(app_id, request.match_info["version"])
    if version is None:
        raise NotFound(f"App '{app_id}' does not exist in version {request.match_info['version']}")
    return web.json_response(version)


def add_routes(router: web.UrlDispatcher) -> None:
    app_path = "/v2/apps/{app_id:.+}"
    router.add_get("/v2/apps", list_apps)
    router.add_post("/v2/apps", create_app)
    router.add_put("/v2/apps", update_apps)
    router.add_patch("/v2/apps", update_apps)
    router.add_post(f"{app_path}/restart", restart_app)
    router.add_get(f"{app_path}/tasks/{{task_id}}", app_task)
    router.add_delete(f"{app_path}/tasks/{{task_id}}", app_task)
    router.add_get(f"{app_path}/tasks", app_tasks)
    router.add_delete(f"{app_path}/tasks", kill_app_tasks)
    router.add_get(f"{app_path}/versions/{{version}}", app_version)
    router.add_get(f"{app_path}/versions", app_versions)
    router.add_get(app_path, show_app)
    router.add_put(app_path, update_app)
    router.add_patch(app_path, update_app)
    router.add_delete(app_path, delete_app)
