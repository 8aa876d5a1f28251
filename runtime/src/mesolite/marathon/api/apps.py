"""/v2/apps: list, create, show, update, delete, restart, tasks and versions of apps."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from mesolite.marathon import health
from mesolite.marathon.api.context import flag, json_body, marathon_of, max_node_size, service_of
from mesolite.marathon.api.views import app_json, app_json_text, deployment_reference, parse_embeds
from mesolite.marathon.app_definition import ValidationError, merge_update, normalize_app
from mesolite.marathon.marathon import Marathon, NotFound
from mesolite.marathon.paths import PathError, canonical_path
from mesolite.marathon.record_size import check_change_fits

LIST_DEFAULT_EMBEDS = {"counts", "deployments"}
SHOW_DEFAULT_EMBEDS = {"counts", "deployments", "tasks", "lastTaskFailure", "readiness"}
# Marathon's versions are ISO-8601 timestamps (`2015-09-17T09:32:42.598Z`).
VERSION = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})$")


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
        apps.append(app_json_text(marathon, app, embeds))
    # Assembled from each app's text (its definition's part cached): what json_response would send.
    return web.Response(text='{"apps": [' + ", ".join(apps) + "]}", content_type="application/json")


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


def _target_of(marathon: Marathon, app_id: str | None, raw: Any, partial: bool) -> tuple[str, dict] | None:
    """The app id and definition `raw` asks for, as the domain will compute it; None when it is invalid
    (the domain then answers with every problem)."""
    try:
        if app_id is None:
            app = normalize_app(raw)
            return app["id"], app
        current = marathon.apps.get(app_id)
        if not isinstance(raw, Mapping) or set(raw) == {"version"}:
            return None  # a rollback to a stored version stores nothing new
        return app_id, normalize_app(merge_update(current, raw) if current and partial else raw, app_id=app_id)
    except (ValidationError, PathError):
        return None


def check_apps_fit(request: web.Request, targets: dict[str, dict], where: dict[str, str] | None = None) -> None:
    """422 before anything is written when the change to `targets` would store a record over --zk_max_node_size."""
    marathon = marathon_of(request)
    original = {app_id: marathon.apps.get(app_id) for app_id in targets}
    check_change_fits(original, targets, max_node_size(request), where)


async def create_app(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    body = await json_body(request)
    target = _target_of(marathon, None, body, partial=False)
    if target is not None:
        check_apps_fit(request, dict([target]))
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
    partial = flag(request, "partialUpdate", True)
    if isinstance(body, list):
        targets: dict[str, dict] = {}
        where: dict[str, str] = {}
        for index, raw in enumerate(body):
            raw_id = raw.get("id") if isinstance(raw, Mapping) else None
            try:
                app_id = canonical_path(raw_id) if isinstance(raw_id, str) else None
            except PathError:
                app_id = None
            target = _target_of(marathon, app_id, raw, partial) if app_id else None
            if target is not None:
                targets[target[0]], where[target[0]] = target[1], f"/({index})"
        check_apps_fit(request, targets, where)
    deployment = await marathon.update_apps(body, partial=partial, force=flag(request, "force"))
    return web.json_response(deployment_reference(deployment), headers={"Marathon-Deployment-Id": deployment.id})


async def show_app(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    app = marathon.app(app_id_of(request))
    embeds = parse_embeds(request.query.getall("embed", []), SHOW_DEFAULT_EMBEDS)
    return web.json_response({"app": app_json(marathon, app, embeds)})


async def update_app(request: web.Request) -> web.Response:
    """PUT and PATCH: a partial update by default (PUT with partialUpdate=false replaces); creates when absent."""
    marathon = marathon_of(request)
    try:
        # Creates the app when absent: an id it could never have is a 422 naming the id, not a 404.
        app_id = canonical_path(request.match_info["app_id"])
    except PathError as error:
        raise ValidationError([("/id", str(error))]) from None
    body = await json_body(request)
    partial = True if request.method == "PATCH" else flag(request, "partialUpdate", True)
    if isinstance(body, Mapping) and set(body) == {"version"} and not is_version(body["version"]):
        raise ValidationError([("/version", f"{str(body['version'])[:64]!r} is not a version of the app")])
    target = _target_of(marathon, app_id, body, partial)
    if target is not None:
        check_apps_fit(request, dict([target]))
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
    app_id = app_id_of(request)
    # A restart stores the app once more (a new version) and twice in its deployment.
    check_apps_fit(request, {app_id: copy.deepcopy(marathon_of(request).app(app_id))})
    deployment = await marathon_of(request).restart_app(app_id, force=flag(request, "force"))
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
    wanted = request.match_info["version"]
    version = await marathon.storage.app_version(app_id, wanted) if is_version(wanted) else None
    if version is None:
        raise NotFound(f"App '{app_id}' does not exist in version {wanted[:64]}")
    return web.json_response(version)


def is_version(value: Any) -> bool:
    """Whether `value` can be an app version (a timestamp): anything else is never looked up in ZooKeeper,
    where a key of megabytes would end the session (and with it the leadership)."""
    return isinstance(value, str) and VERSION.match(value) is not None


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
