"""The JSON shapes of Marathon 1.x: apps with their embeds, tasks, deployments, groups, queue items."""

from __future__ import annotations

import json
import statistics
import time
import weakref
from collections.abc import Iterable
from typing import Any

from mesolite.marathon import health
from mesolite.marathon.app_definition import MAX_ID_DEPTH, READ_ONLY_FIELDS
from mesolite.marathon.deployments import Deployment
from mesolite.marathon.marathon import Marathon
from mesolite.marathon.paths import ROOT, is_within, parent_of
from mesolite.marathon.tasks import MarathonTask

ALL_APP_EMBEDS = {"tasks", "counts", "deployments", "readiness", "lastTaskFailure", "taskStats", "waiting"}
# Why launches of an app wait is a mesolite extension, so it comes only when asked for
# (`embed=app.waiting`): strict Marathon clients such as marathon-python reject fields they do not know.


def parse_embeds(values: Iterable[str], default: set[str]) -> set[str]:
    """`embed=apps.tasks` / `app.tasks` (marathon-python's spelling) -> {"tasks"}; `failures` = lastTaskFailure."""
    embeds = set()
    for value in values:
        name = value.split(".", 1)[-1]
        embeds.add("lastTaskFailure" if name == "failures" else name)
    return (embeds & ALL_APP_EMBEDS) if embeds else set(default)


def app_json(marathon: Marathon, app: dict, embeds: set[str]) -> dict[str, Any]:
    return _definition_fields(app) | _embedded(marathon, app, embeds)


# Per Marathon: app id -> (the app definition, its definition fields as JSON). Definitions are replaced, never
# changed in place, so the same object means the same text; a list of 10,000 apps encodes only what changed.
_encoded_definitions: weakref.WeakKeyDictionary[Marathon, dict[str, tuple[dict, str]]] = weakref.WeakKeyDictionary()
# The embeds whose content changes only with the app's tasks and deployments (`Marathon.view_generations`),
# and per Marathon: app id -> (definition, embeds, generation, the whole view as JSON).
CACHEABLE_EMBEDS = frozenset({"counts", "deployments"})
_encoded_views: weakref.WeakKeyDictionary[Marathon, dict[str, tuple[dict, frozenset, int, str]]] = (
    weakref.WeakKeyDictionary()
)


def app_json_text(marathon: Marathon, app: dict, embeds: set[str]) -> str:
    """`app_json` encoded (as `json.dumps` would): from a cache while the app, its tasks and its deployments
    stay the same (for the list's embeds), else with the definition's part from a cache."""
    wanted = frozenset(embeds)
    cacheable = wanted <= CACHEABLE_EMBEDS
    if cacheable:
        views = _encoded_views.setdefault(marathon, {})
        generation = marathon.view_generations[app["id"]]
        view = views.get(app["id"])
        if view is not None and view[0] is app and view[1] == wanted and view[2] == generation:
            return view[3]
    cache = _encoded_definitions.setdefault(marathon, {})
    cached = cache.get(app["id"])
    if cached is None or cached[0] is not app:
        if len(cache) > 2 * len(marathon.apps) + 100:  # drop the deleted apps' entries now and then
            for app_id in [a for a in cache if a not in marathon.apps]:
                del cache[app_id]
        cached = cache[app["id"]] = (app, json.dumps(_definition_fields(app)))
    embedded = _embedded(marathon, app, embeds)
    text = f"{cached[1][:-1]}, {json.dumps(embedded)[1:]}" if embedded else cached[1]
    if cacheable:
        if len(views) > 2 * len(marathon.apps) + 100:
            for app_id in [a for a in views if a not in marathon.apps]:
                del views[app_id]
        views[app["id"]] = (app, wanted, generation, text)
    return text


def _definition_fields(app: dict) -> dict[str, Any]:
    return {name: value for name, value in app.items() if name not in READ_ONLY_FIELDS or name == "versionInfo"}


def _embedded(marathon: Marathon, app: dict, embeds: set[str]) -> dict[str, Any]:
    """The fields of an app's view that are not its definition: counts, tasks, deployments, ..."""
    wire: dict[str, Any] = {}
    tasks = marathon.tasks_of(app["id"])
    checks = health.check_count(app)
    if "counts" in embeds or "tasks" in embeds:
        wire |= counts(tasks, checks)
    if "deployments" in embeds or "tasks" in embeds:
        wire["deployments"] = [{"id": d.id} for d in marathon.deployments_of(app["id"])]
    if "readiness" in embeds:
        gated = marathon.readiness_gated(app["id"])
        wire["readinessCheckResults"] = marathon.readiness_results_of(app["id"]) if gated else []
    if "tasks" in embeds:
        wire["tasks"] = [task.to_json(checks) for task in tasks]
    if "lastTaskFailure" in embeds and app["id"] in marathon.last_failures:
        wire["lastTaskFailure"] = marathon.last_failures[app["id"]]
    if "taskStats" in embeds:
        wire["taskStats"] = task_stats(tasks, checks)
    if "waiting" in embeds:
        summary = marathon.waiting_summary(app["id"])
        # Only while launches actually wait (offers declined or a backoff): an app that is just
        # being launched carries no such field.
        if summary and (summary["processedOffersSummary"]["unusedOffersCount"] or summary["delaySeconds"] > 0):
            wire["waiting"] = summary
    return wire


def counts(tasks: list[MarathonTask], checks: int) -> dict[str, int]:
    live = [t for t in tasks if t.kill_requested_at is None]
    verdicts = [t.healthy(checks) for t in live if t.is_running] if checks else []
    return {
        "tasksStaged": sum(1 for t in live if t.state in ("TASK_STAGING", "TASK_STARTING")),
        "tasksRunning": sum(1 for t in live if t.is_running),
        "tasksHealthy": sum(1 for v in verdicts if v is True),
        "tasksUnhealthy": sum(1 for v in verdicts if v is False),
    }


def task_stats(tasks: list[MarathonTask], checks: int) -> dict[str, Any]:
    if not tasks:
        return {}
    now = time.time()
    lifetimes = [now - t.started_epoch for t in tasks if t.started_epoch]
    stats: dict[str, Any] = {"counts": {k[5:].lower(): v for k, v in counts(tasks, checks).items()}}
    if lifetimes:
        stats["lifeTime"] = {
            "averageSeconds": round(sum(lifetimes) / len(lifetimes), 3),
            "medianSeconds": round(statistics.median(lifetimes), 3),
        }
    return {"totalSummary": {"stats": stats}}


def deployment_json(deployment: Deployment, marathon: Marathon | None = None) -> dict[str, Any]:
    return deployment.to_json(marathon.readiness_results_of if marathon is not None else None)


def deployment_reference(deployment: Deployment) -> dict[str, str]:
    return {"deploymentId": deployment.id, "version": deployment.version}


def group_json(marathon: Marathon, group_id: str, embeds: set[str]) -> dict[str, Any]:
    """The group tree under `group_id` (implicit groups from app ids plus explicit ones), built in one pass.

    No recursion and one scan of the groups: a tree 3,000 levels deep (stored before ids were limited)
    once took Marathon 30-44 s and 4.4 GB per request. Groups more than `MAX_ID_DEPTH` levels below
    `group_id` are listed flat in their ancestor at that depth (JSON encoders refuse deeper nesting);
    every app still appears once, with its full id.
    """
    members = sorted(g for g in marathon.group_ids() if is_within(g, group_id))
    nodes: dict[str, dict[str, Any]] = {}
    for path in members:
        explicit = marathon.groups.get(path, {})
        nodes[path] = {
            "id": path,
            "apps": [],
            "groups": [],
            "pods": [],
            "dependencies": explicit.get("dependencies", []),
            "version": explicit.get("version") or "",
        }
    base_depth = _depth(group_id)
    for path in members:
        container = _rendered_parent(path, base_depth)
        if path != group_id and container in nodes:
            nodes[container]["groups"].append(nodes[path])
    for app_id in sorted(a for a in marathon.apps if a != group_id and is_within(a, group_id)):
        app = marathon.apps[app_id]
        nodes[_rendered_parent(app_id, base_depth)]["apps"].append(app_json(marathon, app, embeds))
        parent = parent_of(app_id)
        nodes[parent]["version"] = max(nodes[parent]["version"], app.get("version") or "")
    # A group's version is the newest of everything within it: carry versions up, deepest groups first.
    for path in sorted(members, key=_depth, reverse=True):
        parent = parent_of(path)
        if path != group_id and parent in nodes:
            nodes[parent]["version"] = max(nodes[parent]["version"], nodes[path]["version"])
    for node in nodes.values():
        node["version"] = node["version"] or None
    return nodes[group_id]


def _depth(path: str) -> int:
    return 0 if path == ROOT else path.count("/")


def _rendered_parent(path: str, base_depth: int) -> str:
    """The group `path` is listed in: its parent, or its ancestor `MAX_ID_DEPTH` levels below the shown group."""
    if _depth(path) - base_depth <= MAX_ID_DEPTH:
        return parent_of(path)
    return "/" + "/".join(path.strip("/").split("/")[: base_depth + MAX_ID_DEPTH])


def queue_json(marathon: Marathon, last_unused_offers: bool = False) -> dict[str, Any]:
    items = []
    for app, count in marathon.queued_apps():
        summary = marathon.waiting_summary(app["id"]) or {}
        delay = summary.get("delaySeconds", 0)
        item = {
            "count": count,
            "delay": {"timeLeftSeconds": round(delay), "overdue": delay <= 0},
            "since": summary.get("since"),
            "processedOffersSummary": summary.get("processedOffersSummary"),
            "app": app_json(marathon, app, {"counts", "deployments"}),
        }
        if last_unused_offers:
            statistics = marathon.queue.statistics(app["id"])
            item["lastUnusedOffers"] = statistics.last_unused_offers() if statistics else []
        items.append(item)
    return {"queue": items}


def tasks_text(marathon: Marathon, tasks: list[MarathonTask]) -> str:
    """Load balancers' form: one line per app and service port, `app_id<TAB>servicePort<TAB>host:port...`."""
    lines = []
    by_app: dict[str, list[MarathonTask]] = {}
    for task in tasks:
        by_app.setdefault(task.app_id, []).append(task)
    for app_id in sorted(by_app):
        app = marathon.apps.get(app_id)
        if app is None:
            continue
        clean_id = app_id.strip("/").replace("/", "_")
        running = [t for t in by_app[app_id] if t.is_running]
        service_ports = running[0].service_ports if running else []
        if not service_ports:
            lines.append(f"{clean_id}\t \t" + "".join(f"{t.host}\t" for t in running))
        for index, service_port in enumerate(service_ports):
            endpoints = "".join(f"{t.host}:{t.ports[index]}\t" for t in running if index < len(t.ports))
            lines.append(f"{clean_id}\t{service_port}\t{endpoints}")
    return "\n".join(lines) + ("\n" if lines else "")
