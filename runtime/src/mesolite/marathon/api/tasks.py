"""/v2/tasks: every task (JSON, or the text/plain list load balancers read) and POST /v2/tasks/delete."""

from __future__ import annotations

from aiohttp import web

from mesolite.marathon import health
from mesolite.marathon.api.context import flag, json_body, marathon_of
from mesolite.marathon.api.views import deployment_reference, tasks_text
from mesolite.marathon.app_definition import ValidationError

STATUS_FILTERS = {"running": ("TASK_RUNNING",), "staging": ("TASK_STAGING", "TASK_STARTING")}


async def list_tasks(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    # By app from the per-app index (each app's tasks are already at hand, oldest first).
    tasks = [task for app_id in sorted(marathon.tasks.app_ids()) for task in marathon.tasks_of(app_id)]
    wanted = [s for value in request.query.getall("status", []) for s in STATUS_FILTERS.get(value.lower(), ())]
    if wanted:
        tasks = [t for t in tasks if t.state in wanted]
    accept = request.headers.get("Accept", "")
    if "text/plain" in accept and "application/json" not in accept:
        return web.Response(text=tasks_text(marathon, tasks), content_type="text/plain")
    check_counts = {app_id: health.check_count(marathon.apps.get(app_id) or {}) for app_id in marathon.tasks.app_ids()}
    wire = [task.to_json(check_counts.get(task.app_id, 0)) for task in tasks]
    return web.json_response({"tasks": wire})


async def delete_tasks(request: web.Request) -> web.Response:
    marathon = marathon_of(request)
    body = await json_body(request)
    ids = body.get("ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValidationError([("/ids", "must be an array of task ids")])
    killed, deployment = await marathon.kill_tasks(
        ids, scale=flag(request, "scale"), wipe=flag(request, "wipe"), force=flag(request, "force")
    )
    if deployment is not None:
        return web.json_response(deployment_reference(deployment))
    return web.json_response({"tasks": [task.to_json() for task in killed]})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/v2/tasks", list_tasks)
    router.add_post("/v2/tasks/delete", delete_tasks)
