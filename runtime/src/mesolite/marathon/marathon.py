"""The domain of the scheduler: apps, groups, tasks and deployments, and the one place where they change.

Every change — an API request, a status update, a health verdict, a step of a deployment — goes
through `Marathon` under its lock, is persisted through `MarathonStorage` first and then applied in
memory, so that a new leader that loads the state continues where the old one stopped. `tick()`
drives deployments and keeps every app at its instance count; the Mesos side (offers, status updates)
lives in `scheduler.py`, the HTTP side in `api/`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mesolite.marathon import health, readiness
from mesolite.marathon.app_definition import ValidationError, merge_update, normalize_app, strip_for_storage
from mesolite.marathon.deployments import Deployment, config_changed, converge, plan
from mesolite.marathon.events import EventBus
from mesolite.marathon.launch_queue import LaunchQueue
from mesolite.marathon.paths import ROOT, PathError, canonical_path, is_within
from mesolite.marathon.ports import DEFAULT_SERVICE_PORT_RANGE, ServicePortsInUse, assign_service_ports
from mesolite.marathon.storage import MarathonStorage
from mesolite.marathon.tasks import FAILURE_STATES, TERMINAL_STATES, MarathonTask, TaskIndex
from mesolite.marathon.timestamps import VersionClock, format_timestamp, now_timestamp

log = logging.getLogger(__name__)

# A failed task that ran at least this long is not part of a crash loop: its app's backoff starts over.
HEALTHY_RUN_RESETS_BACKOFF_SECONDS = 60
KILL_RETRY_SECONDS = 10
# A task the master does not know right after a failover is given this long for its agent to come back
# (re-registering with it) before it is written off and replaced.
UNKNOWN_TASK_GRACE_SECONDS = 60
# How often at most a deployment re-announces why its launches wait (deployment_info with `waiting`).
WAITING_EVENT_SECONDS = 5


class NotFound(LookupError):
    pass


class Conflict(Exception):
    def __init__(self, message: str, deployments: Iterable[Deployment] = ()) -> None:
        super().__init__(message)
        self.deployments = [{"id": d.id} for d in deployments]


class TaskKiller(Protocol):
    async def kill(self, task_id: str, agent_id: str | None = None, kill_policy: dict | None = None) -> None: ...


@dataclass
class MarathonSettings:
    hostname: str = "localhost"
    http_port: int = 8080
    service_port_range: tuple[int, int] = DEFAULT_SERVICE_PORT_RANGE
    task_launch_timeout: float = 300.0


class Marathon:
    def __init__(self, storage: MarathonStorage, settings: MarathonSettings, events: EventBus | None = None) -> None:
        self.storage = storage
        self.settings = settings
        self.events = events or EventBus()
        self.lock = asyncio.Lock()
        self.clock = VersionClock()
        self.queue = LaunchQueue()
        self.apps: dict[str, dict] = {}
        # Indexes over `apps`, kept in step by `_set_app`: the service ports in use, and how many apps each
        # implicit group (an ancestor of an app id) holds. Creating an app then does not pass over every app.
        self.service_ports = ServicePortsInUse()
        self._apps_below: Counter[str] = Counter()
        self.stopping: dict[str, dict] = {}  # deleted apps whose tasks are still being killed
        self.groups: dict[str, dict] = {}  # explicitly created groups (the others follow from app ids)
        self.deployments: dict[str, Deployment] = {}
        # The deployments of each app (app id -> deployment id -> deployment), in step with `deployments` through
        # `_add_deployment` / `_remove_deployment`: an app's view and a lock check cost its own deployments.
        self._deployments_by_app: dict[str, dict[str, Deployment]] = {}
        self.tasks = TaskIndex()
        self.last_failures: dict[str, dict] = {}
        self.framework_id: str | None = None
        self.killer: TaskKiller | None = None
        self.changed = asyncio.Event()  # something to converge: tick() soon
        # What changed since the last tick (insertion-ordered sets): a tick converges only these apps (and the
        # apps deployments are working on), and the scheduler looks at the health checks of only these tasks.
        # Many changes between two ticks cost one converge per app.
        self.changed_apps: dict[str, None] = {}
        self.changed_tasks: dict[str, None] = {}
        # Bumped whenever an app's tasks or deployments change (with `note_change`): an app's view in a list
        # is encoded again only when its number moved (api/views.py).
        self.view_generations: Counter[str] = Counter()
        self._announced_waiting: dict[str, tuple[str, float]] = {}
        # Readiness (in memory: a new leader checks again): the tasks that count as ready for their deployment,
        # and the latest result of each readiness check of each task (task id -> check name -> result).
        self.ready_tasks: set[str] = set()
        self.readiness_results: dict[str, dict[str, dict]] = {}

    # -- loading ----------------------------------------------------------------------------------

    async def load(self) -> None:
        stored = await self.storage.load()
        self.framework_id = stored.framework_id
        for app_id, app in stored.apps.items():
            self._set_app(app_id, app)
        self.groups = stored.groups
        self.tasks = TaskIndex(MarathonTask.from_record(record) for record in stored.tasks.values())
        for record in stored.deployments.values():
            deployment = Deployment.from_record(record)
            self._add_deployment(deployment)
            for app_id, target in deployment.target.items():
                if target is None and app_id not in self.apps:
                    self.stopping[app_id] = deployment.original.get(app_id) or {"id": app_id, "instances": 0}

    # -- reads ------------------------------------------------------------------------------------

    def app(self, app_id: str) -> dict:
        app = self.apps.get(app_id)
        if app is None:
            raise NotFound(f"App '{app_id}' does not exist")
        return app

    def tasks_of(self, app_id: str) -> list[MarathonTask]:
        """The app's tasks, oldest first (from the per-app index: costs what the app has)."""
        return self.tasks.of_app(app_id)

    def note_change(self, app_id: str | None = None, task_id: str | None = None) -> None:
        """Something about this app (and task) changed: converge it in the next tick, which this wakes."""
        if app_id is not None:
            self.changed_apps[app_id] = None
            self.view_generations[app_id] += 1
        if task_id is not None:
            self.changed_tasks[task_id] = None
        self.changed.set()

    def take_changed_tasks(self) -> list[str]:
        """The tasks changed since the last call (the scheduler re-plans their health checks)."""
        taken, self.changed_tasks = list(self.changed_tasks), {}
        return taken

    def active_tasks(self, app_id: str) -> list[MarathonTask]:
        return [t for t in self.tasks_of(app_id) if t.is_active]

    def deployments_of(self, app_id: str) -> list[Deployment]:
        return list(self._deployments_by_app.get(app_id, {}).values())

    def _deployments_of_apps(self, app_ids: Iterable[str]) -> list[Deployment]:
        """The deployments affecting any of `app_ids`, oldest first (as in `deployments`)."""
        found = {d.id: d for app_id in app_ids for d in self._deployments_by_app.get(app_id, {}).values()}
        if len(found) <= 1:
            return list(found.values())
        return [d for d in self.deployments.values() if d.id in found]

    def _add_deployment(self, deployment: Deployment) -> None:
        self.deployments[deployment.id] = deployment
        for app_id in deployment.affected_apps:
            self._deployments_by_app.setdefault(app_id, {})[deployment.id] = deployment
            self.view_generations[app_id] += 1

    def _remove_deployment(self, deployment_id: str) -> Deployment | None:
        deployment = self.deployments.pop(deployment_id, None)
        if deployment is not None:
            for app_id in deployment.affected_apps:
                self.view_generations[app_id] += 1
                of_app = self._deployments_by_app.get(app_id, {})
                of_app.pop(deployment_id, None)
                if not of_app:
                    self._deployments_by_app.pop(app_id, None)
        return deployment

    def is_healthy(self, task: MarathonTask, app: Mapping[str, Any]) -> bool:
        return task.healthy(health.check_count(app)) is True

    def readiness_gated(self, app_id: str) -> bool:
        """Whether the app's new tasks must pass readiness checks now: it has some and a deployment starts tasks."""
        app = self.apps.get(app_id)
        if app is None or not app.get("readinessChecks"):
            return False
        return any(
            action.app == app_id and action.action in readiness.GATED_ACTIONS
            for deployment in self.deployments.values()
            for action in deployment.current_actions
        )

    def counts_for_deployment(self, task: MarathonTask, app: Mapping[str, Any]) -> bool:
        """Healthy, and ready where the app's deployment needs readiness."""
        if not self.is_healthy(task, app):
            return False
        return task.id in self.ready_tasks or not self.readiness_gated(task.app_id)

    def readiness_results_of(self, app_id: str) -> list[dict]:
        """The latest readiness results of the app's tasks (a deployment step's `readinessCheckResults`)."""
        return [
            result
            for task in self.tasks_of(app_id)
            for _name, result in sorted(self.readiness_results.get(task.id, {}).items())
        ]

    async def readiness_verdict(self, task: MarathonTask, result: dict[str, Any]) -> None:
        """Record one readiness check result; the task is ready once each of its app's checks said so."""
        async with self.lock:
            app = self.apps.get(task.app_id)
            if task.id not in self.tasks or app is None:
                return
            results = self.readiness_results.setdefault(task.id, {})
            results[result["name"]] = result
            names = {check["name"] for check in readiness.checks_of(app)}
            if task.id not in self.ready_tasks and all(results.get(n, {}).get("ready") for n in names):
                log.info("task %s of %s is ready", task.id, task.app_id)
                self.ready_tasks.add(task.id)
                self.note_change(task.app_id, task.id)

    def used_service_ports(self, except_app: str | None = None) -> set[int]:
        return set(self.service_ports.except_app(except_app))

    def group_ids(self) -> set[str]:
        """Every group: the explicit ones and every ancestor of an app."""
        return {ROOT} | set(self.groups) | set(self._apps_below)

    def is_group(self, path: str) -> bool:
        return path == ROOT or path in self.groups or path in self._apps_below

    def _set_app(self, app_id: str, app: dict | None) -> None:
        """The one place `apps` changes: `app_id` is now `app` (None: removed), and the indexes follow."""
        previous = self.apps.pop(app_id, None) if app is None else self.apps.get(app_id)
        if app is not None:
            self.apps[app_id] = app
        self.service_ports.set_app(app_id, app)
        if (previous is None) != (app is None):
            parts = [p for p in app_id.split("/") if p]
            for n in range(1, len(parts)):
                group = "/" + "/".join(parts[:n])
                self._apps_below[group] += 1 if app is not None else -1
                if self._apps_below[group] <= 0:
                    del self._apps_below[group]

    # -- app changes ------------------------------------------------------------------------------

    async def create_app(self, raw: Any, base_group: str = ROOT) -> tuple[dict, Deployment]:
        app = normalize_app(raw, base_group)
        async with self.lock:
            if app["id"] in self.apps or app["id"] in self.stopping:
                raise Conflict(f"An app with id [{app['id']}] already exists.")
            if self.is_group(app["id"]):
                raise Conflict(f"A group with id [{app['id']}] already exists.")
            deployment = await self._deploy({app["id"]: self._versioned(app, None)})
            return self.apps[app["id"]], deployment

    async def update_app(
        self, app_id: str, raw: Any, partial: bool = True, force: bool = False
    ) -> tuple[Deployment, bool]:
        """PUT/PATCH /v2/apps/{id}: returns the deployment and whether the app was created."""
        if not isinstance(raw, Mapping):
            raise ValidationError([("/", "an app update must be a JSON object")])
        async with self.lock:
            current = self.apps.get(app_id)
            if current is None:
                if set(raw) == {"version"}:
                    raise NotFound(f"App '{app_id}' does not exist")
                app = normalize_app(raw, app_id=app_id)
                if app_id in self.stopping:
                    raise Conflict(f"App '{app_id}' is being deleted.", self.deployments_of(app_id))
                return await self._deploy({app_id: self._versioned(app, None)}), True
            self._check_unlocked([app_id], force)
            if set(raw) == {"version"}:
                target = await self.storage.app_version(app_id, str(raw["version"]))
                if target is None:
                    raise NotFound(f"App '{app_id}' does not exist in version {raw['version']}")
                app = normalize_app(strip_for_storage(target), app_id=app_id)
            else:
                app = normalize_app(merge_update(current, raw) if partial else raw, app_id=app_id)
            return await self._deploy({app_id: self._versioned(app, current)}, force=force), False

    async def update_apps(self, raws: Any, partial: bool = True, force: bool = False) -> Deployment:
        """PUT /v2/apps with a list: one deployment for all of them."""
        if not isinstance(raws, list):
            raise ValidationError([("/", "expected a JSON array of apps")])
        async with self.lock:
            targets: dict[str, dict] = {}
            violations: list[tuple[str, str]] = []
            for index, raw in enumerate(raws):
                try:
                    app_id = canonical_path(raw.get("id", "") if isinstance(raw, Mapping) else "")
                    current = self.apps.get(app_id)
                    base = merge_update(current, raw) if (current and partial) else raw
                    targets[app_id] = self._versioned(normalize_app(base, app_id=app_id), current)
                except ValidationError as error:
                    violations += [(f"/({index}){path}", reason) for path, reason in error.violations]
                except PathError as error:
                    violations.append((f"/({index})/id", str(error)))
            if violations:
                raise ValidationError(violations)
            self._check_unlocked(list(targets), force)
            return await self._deploy(targets, force=force)

    async def restart_app(self, app_id: str, force: bool = False) -> Deployment:
        async with self.lock:
            current = self.app(app_id)
            self._check_unlocked([app_id], force)
            app = copy.deepcopy(current)
            version = self.clock.next()
            app["version"] = version
            app["versionInfo"] = {"lastScalingAt": version, "lastConfigChangeAt": version}
            return await self._deploy({app_id: app}, force=force, restart=[app_id])

    async def delete_app(self, app_id: str, force: bool = False) -> Deployment:
        async with self.lock:
            self.app(app_id)
            self._check_unlocked([app_id], force)
            return await self._deploy({app_id: None}, force=force)

    async def rollback(self, deployment_id: str, force: bool = False) -> Deployment | None:
        """DELETE /v2/deployments/{id}: stop it; without `force`, also deploy the original definitions back."""
        async with self.lock:
            deployment = self.deployments.get(deployment_id)
            if deployment is None:
                raise NotFound(f"DeploymentPlan {deployment_id} does not exist")
            await self._cancel(deployment)
            if force:
                return None
            version = self.clock.next()
            targets: dict[str, dict | None] = {}
            for app_id, original in deployment.original.items():
                if original is None:
                    targets[app_id] = None
                    continue
                app = copy.deepcopy(original)
                app["version"] = version
                # Keep the original configuration's identity: its tasks are current again, the new ones are not.
                app["versionInfo"] = {**(original.get("versionInfo") or {}), "lastScalingAt": version}
                targets[app_id] = app
            return await self._deploy(targets, version=version, prepared=True)

    def _versioned(self, app: dict, current: dict | None) -> dict:
        """`app` with its new version, versionInfo and service ports (kept from `current` where possible)."""
        version = self.clock.next()
        app["version"] = version
        if current is None:
            app["versionInfo"] = {"lastScalingAt": version, "lastConfigChangeAt": version}
        else:
            previous = current.get("versionInfo") or {}
            app["versionInfo"] = {"lastScalingAt": version, "lastConfigChangeAt": previous.get("lastConfigChangeAt")}
        assign_service_ports(app, self.service_ports.except_app(app["id"]), current, self.settings.service_port_range)
        if current is not None and config_changed(current, app):
            app["versionInfo"]["lastConfigChangeAt"] = version
        return app

    def _check_unlocked(self, app_ids: list[str], force: bool) -> None:
        locking = self._deployments_of_apps(app_ids)
        if locking and not force:
            raise Conflict(
                "App is locked by one or more deployments. Override with the option '?force=true'. "
                "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
                locking,
            )

    async def _deploy(
        self,
        targets: Mapping[str, dict | None],
        force: bool = False,
        restart: list[str] | None = None,
        version: str | None = None,
        prepared: bool = False,
    ) -> Deployment:
        """Persist the new definitions and a deployment towards them; the caller holds the lock."""
        if force:
            for deployment in self._deployments_of_apps(targets):
                await self._cancel(deployment)
        original = {app_id: copy.deepcopy(self.apps.get(app_id)) for app_id in targets}
        version = version or next((t["version"] for t in targets.values() if t), None) or self.clock.next()
        deployment = plan(original, dict(targets), version, restart or [])
        await self.storage.save_deployment(deployment.to_record())
        for app_id, target in targets.items():
            if target is None:
                await self.storage.delete_app(app_id)
                self.stopping[app_id] = self.apps[app_id]
                self._set_app(app_id, None)
                self.queue.forget(app_id)
            else:
                await self.storage.save_app(target)
                previous = self.apps.get(app_id)
                self._set_app(app_id, target)
                # Readiness gates the tasks a deployment starts: the running ones of this configuration passed.
                # Results shown are this deployment's only.
                for task in self.tasks_of(app_id):
                    self.readiness_results.pop(task.id, None)
                config = target["versionInfo"]["lastConfigChangeAt"]
                self.ready_tasks |= {t.id for t in self.tasks_of(app_id) if t.is_running and t.config_version == config}
                if previous is None or config_changed(previous, target):
                    self.queue.reset_delay(app_id)
            # A new definition may change every task's health checks.
            for task in self.tasks_of(app_id):
                self.changed_tasks[task.id] = None
            self.changed_apps[app_id] = None
        self._add_deployment(deployment)
        self.events.publish("group_change_success", groupId=ROOT, version=version)
        self.events.publish("deployment_info", plan=deployment.plan_json(), currentStep=_step_json(deployment))
        self.changed.set()
        return deployment

    async def _cancel(self, deployment: Deployment) -> None:
        await self.storage.delete_deployment(deployment.id)
        self._remove_deployment(deployment.id)
        self._release(deployment)
        self.events.publish("deployment_failed", id=deployment.id, plan=deployment.plan_json())

    # -- groups -----------------------------------------------------------------------------------

    async def put_group(self, raw: Any, group_id: str | None = None, force: bool = False) -> Deployment:
        """POST/PUT a group: its apps (and subgroups' apps) are created or updated in one deployment."""
        if not isinstance(raw, Mapping):
            raise ValidationError([("/", "a group must be a JSON object")])
        try:
            gid = canonical_path(group_id or raw.get("id") or "")
        except PathError as error:
            raise ValidationError([("/id", str(error))]) from None
        violations: list[tuple[str, str]] = []
        apps: list[tuple[str, Any, str]] = []
        groups: dict[str, dict] = {}

        def collect(group: Mapping, group_path: str, where: str) -> None:
            groups[group_path] = {"id": group_path, "dependencies": list(group.get("dependencies") or [])}
            for index, app in enumerate(group.get("apps") or []):
                apps.append((f"{where}/apps({index})", app, group_path))
            for index, sub in enumerate(group.get("groups") or []):
                try:
                    sub_path = canonical_path(sub.get("id", ""), group_path)
                except (PathError, AttributeError) as error:
                    violations.append((f"{where}/groups({index})/id", str(error)))
                    continue
                collect(sub, sub_path, f"{where}/groups({index})")

        collect(raw, gid, "")
        async with self.lock:
            targets: dict[str, dict] = {}
            for where, app_raw, base in apps:
                try:
                    app = normalize_app(app_raw, base)
                    current = self.apps.get(app["id"])
                    targets[app["id"]] = self._versioned(app, current)
                except ValidationError as error:
                    violations += [(f"{where}{path}", reason) for path, reason in error.violations]
            if violations:
                raise ValidationError(violations)
            if group_id is None and self.is_group(gid) and gid != ROOT:
                raise Conflict(f"Group {gid} is already created. Use PUT to change this group.")
            self._check_unlocked(list(targets), force)
            version = self.clock.next()
            for path, group in groups.items():
                group["version"] = version
                await self.storage.save_group(group)
                self.groups[path] = group
            return await self._deploy(targets, force=force, version=version)

    async def delete_group(self, group_id: str, force: bool = False) -> Deployment:
        async with self.lock:
            if not self.is_group(group_id):
                raise NotFound(f"Group '{group_id}' does not exist")
            app_ids = [a for a in self.apps if is_within(a, group_id)]
            self._check_unlocked(app_ids, force)
            for path in [g for g in self.groups if is_within(g, group_id)]:
                await self.storage.delete_group(path)
                del self.groups[path]
            return await self._deploy(dict.fromkeys(app_ids), force=force)

    # -- tasks ------------------------------------------------------------------------------------

    async def kill_tasks(
        self, task_ids: Iterable[str], scale: bool = False, wipe: bool = False, force: bool = False
    ) -> tuple[list[MarathonTask], Deployment | None]:
        """Kill tasks; with `scale`, also lower their apps' instances (one deployment)."""
        async with self.lock:
            victims = [self.tasks[t] for t in task_ids if t in self.tasks]
            deployment = None
            if scale and victims:
                per_app: dict[str, int] = {}
                for task in victims:
                    per_app[task.app_id] = per_app.get(task.app_id, 0) + 1
                targets = {}
                for app_id, count in per_app.items():
                    if app_id not in self.apps:
                        continue
                    app = copy.deepcopy(self.apps[app_id])
                    app["instances"] = max(0, app["instances"] - count)
                    targets[app_id] = self._versioned(app, self.apps[app_id])
                self._check_unlocked(list(targets), force)
                for task in victims:
                    await self.kill(task, "killed through the API with scale=true")
                deployment = await self._deploy(targets, force=force)
            else:
                for task in victims:
                    await self.kill(task, "killed through the API")
            if wipe:
                for task in victims:
                    await self._expunge(task)
            return victims, deployment

    async def kill(self, task: MarathonTask, reason: str) -> None:
        """Ask Mesos to kill `task` (again, if an earlier request seems lost); the caller holds the lock."""
        first = task.kill_requested_at is None
        task.kill_requested_at = time.time()
        if first:
            log.info("killing task %s: %s", task.id, reason)
            await self.storage.save_task(task.to_record())
            self.note_change(task.app_id, task.id)
        if self.killer is not None:
            app = self.apps.get(task.app_id) or self.stopping.get(task.app_id) or {}
            grace = app.get("taskKillGracePeriodSeconds")
            policy = {"grace_period": {"nanoseconds": int(float(grace) * 1e9)}} if grace else None
            try:
                await self.killer.kill(task.id, task.agent_id, policy)
            except Exception as error:  # the master is away: tick() asks again later
                log.warning("kill of %s not delivered: %s", task.id, error)

    async def _expunge(self, task: MarathonTask) -> None:
        await self.storage.delete_task(task.id)
        self.tasks.remove(task.id)
        self.ready_tasks.discard(task.id)
        self.readiness_results.pop(task.id, None)
        self.note_change(task.app_id)

    # -- status updates (called by the scheduler, under the lock) -----------------------------------

    async def task_launched(self, task: MarathonTask) -> None:
        await self.storage.save_task(task.to_record())
        self.tasks.add(task)
        self.queue.launched(task.app_id)
        self.note_change(task.app_id, task.id)

    async def tasks_launched(self, tasks: list[MarathonTask]) -> list[MarathonTask]:
        """Store the tasks about to be launched, all at once (one ZooKeeper round trip each, in flight
        together, rather than one after the other under the lock); the ones stored, which may be launched.
        Their launches were taken from the queue already (`queue.launched`): one not stored is queued again
        by the next converge of its app."""
        outcomes = await asyncio.gather(*(self.storage.save_task(t.to_record()) for t in tasks), return_exceptions=True)
        stored = []
        for task, outcome in zip(tasks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                log.warning("task %s not stored, so not launched: %s", task.id, outcome)
            else:
                self.tasks.add(task)
                stored.append(task)
            self.note_change(task.app_id, task.id)
        return stored

    async def status_update(self, status: Mapping[str, Any]) -> bool:
        """Apply a TaskStatus; False for a task Marathon does not know (the scheduler then kills it)."""
        task_id = status["task_id"]["value"]
        state = status.get("state", "")
        task = self.tasks.get(task_id)
        if task is None:
            return state in TERMINAL_STATES
        if (
            state in ("TASK_UNKNOWN", "TASK_LOST")
            and status.get("reason") == "REASON_RECONCILIATION"
            and status.get("source", "SOURCE_MASTER") == "SOURCE_MASTER"
        ):
            # The master does not know the task — typically a new master that has not heard from the
            # task's agent yet. Not a definite answer: ask again until the agent is back (then the master
            # says RUNNING, or TASK_GONE) or the grace period ends.
            if task.reconciling_since is None:
                task.reconciling_since = time.time()
                log.info("the master does not know task %s yet; asking again until its agent is back", task.id)
            return True
        task.reconciling_since = None
        if state in ("TASK_STAGING", "TASK_STARTING") and task.state in ("TASK_RUNNING", "TASK_KILLING"):
            # An older update re-sent because nobody acknowledged it (e.g. across a failover of Marathon):
            # the task is past it already (reconciliation reported the agent's latest state).
            return True
        previous_state = task.state
        task.state = state
        if state == "TASK_RUNNING" and task.started_at is None:
            task.started_at = now_timestamp()
            task.started_epoch = time.time()
        if "healthy" in status:
            task.mesos_healthy = bool(status["healthy"])
        addresses = [
            {"ipAddress": address["ip_address"], "protocol": address.get("protocol", "IPv4")}
            for network in (status.get("container_status") or {}).get("network_infos") or []
            for address in network.get("ip_addresses") or []
            if address.get("ip_address")
        ]
        if addresses:
            task.ip_addresses = addresses
        if state == "TASK_UNREACHABLE":
            task.unreachable_since = task.unreachable_since or time.time()
        elif state in ("TASK_RUNNING", "TASK_STARTING"):
            task.unreachable_since = None
        self.events.publish(
            "status_update_event",
            slaveId=task.agent_id,
            taskId=task.id,
            taskStatus=state,
            message=status.get("message", ""),
            appId=task.app_id,
            host=task.host,
            ports=task.ports,
            ipAddresses=task.ip_addresses,
            version=task.version,
        )
        if state in TERMINAL_STATES:
            await self._task_ended(task, status)
        elif state != previous_state or "healthy" in status:
            await self.storage.save_task(task.to_record())
        self.note_change(task.app_id, task.id)
        return True

    async def _task_ended(self, task: MarathonTask, status: Mapping[str, Any]) -> None:
        await self._expunge(task)
        state = status.get("state", "")
        app = self.apps.get(task.app_id)
        if state in FAILURE_STATES or (state in ("TASK_FINISHED", "TASK_KILLED") and task.kill_requested_at is None):
            self.last_failures[task.app_id] = {
                "appId": task.app_id,
                "host": task.host,
                "message": status.get("message", ""),
                "state": state,
                "taskId": task.id,
                "instanceId": task.id,
                "slaveId": task.agent_id,
                "timestamp": now_timestamp(),
                "version": task.version,
            }
            if app is not None:
                ran = time.time() - task.started_epoch if task.started_epoch else 0
                if ran >= HEALTHY_RUN_RESETS_BACKOFF_SECONDS:
                    self.queue.reset_delay(task.app_id)
                delay = self.queue.note_failure(
                    task.app_id, app["backoffSeconds"], app["backoffFactor"], app["maxLaunchDelaySeconds"]
                )
                log.info("task %s of %s ended %s; next launch in %.1fs", task.id, task.app_id, state, delay)

    async def health_verdict(self, task: MarathonTask, index: int, outcome: health.ProbeOutcome) -> None:
        """Fold a Marathon-side probe result into the task; kill it after too many failures."""
        async with self.lock:
            app = self.apps.get(task.app_id)
            if task.id not in self.tasks or app is None or index >= len(app["healthChecks"]):
                return
            check = app["healthChecks"][index]
            result = task.health.setdefault(index, health.HealthResult())
            verdict = health.record(result, outcome, check, task.started_epoch, time.time())
            if verdict.changed:
                self.events.publish(
                    "health_status_changed_event",
                    appId=task.app_id,
                    taskId=task.id,
                    instanceId=task.id,
                    version=task.version,
                    alive=result.alive,
                )
            if not outcome.healthy and verdict.counted:
                self.events.publish(
                    "failed_health_check_event",
                    appId=task.app_id,
                    taskId=task.id,
                    instanceId=task.id,
                    healthCheck=check,
                )
            if verdict.kill and task.kill_requested_at is None:
                reason = f"{result.consecutive_failures} consecutive health check failures: {result.last_failure_cause}"
                self.events.publish(
                    "unhealthy_task_kill_event",
                    appId=task.app_id,
                    taskId=task.id,
                    instanceId=task.id,
                    version=task.version,
                    reason=reason,
                    host=task.host,
                    slaveId=task.agent_id,
                )
                await self.kill(task, reason)
            self.note_change(task.app_id, task.id)

    # -- converging -------------------------------------------------------------------------------

    async def tick(self, converge_all: bool = True, timers: bool = True) -> None:
        """Move every deployment forward and keep apps at their instance counts.

        With `converge_all`, every app is converged; otherwise only the apps that changed since the last tick,
        the apps deployments are working on and the apps being stopped: a status update costs its own app, not
        every app. With `timers`, tasks are also checked against their deadlines (launch timeout, unreachable,
        unconfirmed kills): a scan of every task, which the scheduler runs every `TICK_SECONDS`.
        """
        async with self.lock:
            now = time.time()
            if timers:
                await self._expire_tasks(now)
            current_actions: dict[str, str] = {}
            held: set[str] = set()
            for deployment in self.deployments.values():
                for action in deployment.current_actions:
                    current_actions[action.app] = action.action
                held |= set(deployment.affected_apps)
            changed, self.changed_apps = self.changed_apps, {}
            if converge_all:
                app_ids: Iterable[str] = list(self.apps)
            else:
                app_ids = [a for a in {**changed, **dict.fromkeys(current_actions)} if a in self.apps]
            done_apps: set[str] = set()
            for app_id in app_ids:
                app = self.apps[app_id]
                action = current_actions.get(app_id)
                if app_id in held and action is None:
                    continue  # waits for an earlier step of its deployment (released apps are converged then)
                await self._converge_app(app_id, app, action, done_apps)
            for app_id in list(self.stopping):
                remaining = self.tasks_of(app_id)
                for task in remaining:
                    if task.kill_requested_at is None:
                        await self.kill(task, "its app was deleted")
                if not remaining:
                    del self.stopping[app_id]
                    self.last_failures.pop(app_id, None)
                    self.events.publish("app_terminated_event", appId=app_id)
                    done_apps.add(app_id)
            # A stopped app stays done: the apps of one step may stop in different ticks.
            for deployment in self.deployments.values():
                for action in deployment.current_actions:
                    if action.action == "StopApplication" and action.app not in self.stopping:
                        done_apps.add(action.app)
            if timers:
                for task in list(self.tasks.values()):
                    if task.kill_requested_at and now - task.kill_requested_at > KILL_RETRY_SECONDS:
                        await self.kill(task, "the earlier kill was not confirmed")
            await self._advance_deployments(done_apps)
            self._announce_waiting(now)

    async def _converge_app(self, app_id: str, app: dict, action: str | None, done_apps: set[str]) -> None:
        every = self.tasks_of(app_id)
        tasks = [t for t in every if t.is_active]
        dying = sum(1 for t in every if t.kill_requested_at is not None)
        # `counts_for_deployment`, with what is the same for every task of the app worked out once.
        checks = health.check_count(app)
        gated = self.readiness_gated(app_id)
        ready = self.ready_tasks

        def counts(task: MarathonTask) -> bool:
            return task.healthy(checks) is True and (not gated or task.id in ready)

        decision = converge(
            app, tasks, self.queue.count(app_id), counts, rolling=action == "RestartApplication", dying=dying
        )
        if decision.launch:
            self.queue.set_count(app_id, self.queue.count(app_id) + decision.launch)
        if decision.kill:
            config = app["versionInfo"]["lastConfigChangeAt"]
            log.info(
                "%s (%s): killing %d of %d active tasks (%d outdated, %d healthy, %d queued, %d dying)",
                app_id,
                action or "keeping the instance count",
                len(decision.kill),
                len(tasks),
                sum(1 for t in tasks if t.config_version != config),
                sum(1 for t in tasks if self.is_healthy(t, app)),
                self.queue.count(app_id),
                dying,
            )
        for task in decision.kill:
            await self.kill(task, "not needed by the app's definition any more")
        if action == "StartApplication" or decision.done:
            done_apps.add(app_id)

    async def _expire_tasks(self, now: float) -> None:
        for task in list(self.tasks.values()):
            if task.state == "TASK_STAGING" and now - task.staged_epoch > self.settings.task_launch_timeout:
                await self.kill(task, f"not running after {self.settings.task_launch_timeout:g}s")
                await self._expunge(task)
            elif task.reconciling_since and now - task.reconciling_since > UNKNOWN_TASK_GRACE_SECONDS:
                log.info("task %s stayed unknown to the master: replacing it", task.id)
                await self.kill(task, "unknown to the master")
                await self._expunge(task)
            elif task.unreachable_since is not None:
                app = self.apps.get(task.app_id) or self.stopping.get(task.app_id) or {}
                strategy = app.get("unreachableStrategy")
                expunge_after = strategy.get("expungeAfterSeconds", 0) if isinstance(strategy, dict) else None
                if expunge_after is not None and now - task.unreachable_since >= expunge_after:
                    await self.kill(task, "unreachable for too long")
                    await self._expunge(task)

    def _release(self, deployment: Deployment) -> None:
        """A deployment ended: its apps are converged again (changes while they were held were skipped)."""
        for app_id in deployment.affected_apps:
            self.changed_apps[app_id] = None
        self.changed.set()

    async def _advance_deployments(self, done_apps: set[str]) -> None:
        for deployment in sorted(self.deployments.values(), key=lambda d: d.version):
            if not deployment.steps:  # e.g. a group without apps: nothing to do
                await self.storage.delete_deployment(deployment.id)
                self._remove_deployment(deployment.id)
                self._release(deployment)
                self.events.publish("deployment_success", id=deployment.id, plan=deployment.plan_json())
                continue
            while deployment.current_actions and all(a.app in done_apps for a in deployment.current_actions):
                self.events.publish(
                    "deployment_step_success",
                    plan=deployment.plan_json(),
                    currentStep=_step_json(deployment),
                )
                deployment.current_step += 1
                if deployment.current_step > len(deployment.steps):
                    await self.storage.delete_deployment(deployment.id)
                    self._remove_deployment(deployment.id)
                    self._release(deployment)
                    self.events.publish("deployment_success", id=deployment.id, plan=deployment.plan_json())
                    break
                await self.storage.save_deployment(deployment.to_record())
                self.events.publish(
                    "deployment_info",
                    plan=deployment.plan_json(),
                    currentStep=_step_json(deployment),
                )
                # The next step's apps have not been looked at in this tick: the next one does.
                break

    def _announce_waiting(self, now: float) -> None:
        """Say why a deployment waits: a deployment_info event carrying each waiting app's summary."""
        for deployment in self.deployments.values():
            waiting = {}
            for action in deployment.current_actions:
                summary = self.waiting_summary(action.app)
                if summary and (summary["processedOffersSummary"]["unusedOffersCount"] or summary["delaySeconds"]):
                    waiting[action.app] = summary["summary"]
            if not waiting:
                continue
            text = repr(sorted(waiting.items()))
            previous = self._announced_waiting.get(deployment.id)
            if previous and (previous[0] == text or now - previous[1] < WAITING_EVENT_SECONDS):
                continue
            self._announced_waiting[deployment.id] = (text, now)
            self.events.publish(
                "deployment_info", plan=deployment.plan_json(), currentStep=_step_json(deployment), waiting=waiting
            )
        for deployment_id in set(self._announced_waiting) - set(self.deployments):
            del self._announced_waiting[deployment_id]

    # -- what the API reports ---------------------------------------------------------------------

    def queued_apps(self) -> list[tuple[dict, int]]:
        return [(self.apps[e.app_id], e.count) for e in self.queue.entries.values() if e.app_id in self.apps]

    def waiting_summary(self, app_id: str) -> dict[str, Any] | None:
        """Why launches of the app wait: backoff and declined offers (None when nothing is queued)."""
        entry = self.queue.entries.get(app_id)
        if entry is None:
            return None
        delay = self.queue.delay_left(app_id)
        summary = entry.statistics.summary()
        if delay > 0:
            summary = f"backing off after task failures ({delay:.0f}s left); {summary}"
        return {
            "count": entry.count,
            "since": format_timestamp(entry.since),
            "delaySeconds": round(delay, 3),
            "summary": summary,
            "processedOffersSummary": entry.statistics.to_json(),
        }


def _step_json(deployment: Deployment) -> dict[str, Any]:
    return {"actions": [action.to_json() for action in deployment.current_actions]}
