"""Deployments: the plan (steps of actions) that moves apps from their original to their target definition,
and the rolling arithmetic that decides, at each moment, how many tasks to launch and which to kill.

Marathon's actions: StartApplication (a new app), ScaleApplication (only `instances` changed),
RestartApplication (the configuration changed, or a restart was asked for: replace every task, obeying
`upgradeStrategy`), StopApplication (the app was deleted). Apps that depend on others come in later steps.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from mesolite.marathon.tasks import MarathonTask


@dataclass
class Action:
    action: str
    app: str

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "app": self.app}


@dataclass
class Deployment:
    id: str
    version: str
    steps: list[list[Action]]
    original: dict[str, dict | None]  # app id -> the definition before (None: did not exist)
    target: dict[str, dict | None]  # app id -> the definition after (None: deleted)
    current_step: int = 1  # 1-based, as Marathon reports it
    started_at: str = ""

    @cached_property
    def affected_apps(self) -> list[str]:
        # `original` and `target` never change after the plan is made.
        return sorted(set(self.original) | set(self.target))

    @property
    def current_actions(self) -> list[Action]:
        index = self.current_step - 1
        return self.steps[index] if 0 <= index < len(self.steps) else []

    def to_json(self, readiness_results: Callable[[str], list[dict]] | None = None) -> dict[str, Any]:
        """The /v2/deployments form (marathon-python's MarathonDeployment); `readiness_results` gives the
        latest readiness check results of an app's tasks (each current action shows its app's)."""
        results = readiness_results or (lambda _app_id: [])
        return {
            "id": self.id,
            "version": self.version,
            "affectedApps": self.affected_apps,
            "affectedPods": [],
            "steps": [{"actions": [action.to_json() for action in step]} for step in self.steps],
            "currentActions": [{**a.to_json(), "readinessCheckResults": results(a.app)} for a in self.current_actions],
            "currentStep": self.current_step,
            "totalSteps": len(self.steps),
        }

    def plan_json(self) -> dict[str, Any]:
        """The `plan` of deployment events (marathon-python's MarathonDeploymentPlan)."""
        return {
            "id": self.id,
            "version": self.version,
            "original": {
                "id": "/",
                "apps": [a for a in self.original.values() if a],
                "groups": [],
                "dependencies": [],
                "version": self.version,
            },
            "target": {
                "id": "/",
                "apps": [a for a in self.target.values() if a],
                "groups": [],
                "dependencies": [],
                "version": self.version,
            },
            "steps": [{"actions": [action.to_json() for action in step]} for step in self.steps],
        }

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "steps": [[a.to_json() for a in step] for step in self.steps],
            "original": self.original,
            "target": self.target,
            "current_step": self.current_step,
            "started_at": self.started_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Deployment:
        return cls(
            id=record["id"],
            version=record["version"],
            steps=[[Action(a["action"], a["app"]) for a in step] for step in record["steps"]],
            original=dict(record["original"]),
            target=dict(record["target"]),
            current_step=record.get("current_step", 1),
            started_at=record.get("started_at", ""),
        )


def config_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    ignored = {"instances", "version", "versionInfo"}
    return {k: v for k, v in before.items() if k not in ignored} != {k: v for k, v in after.items() if k not in ignored}


def plan(
    original: Mapping[str, dict | None],
    target: Mapping[str, dict | None],
    version: str,
    restart: Sequence[str] = (),
) -> Deployment:
    """The deployment from `original` to `target` (both keyed by app id); `restart` forces RestartApplication."""
    actions: dict[str, list[str]] = {}
    for app_id in sorted(set(original) | set(target)):
        before, after = original.get(app_id), target.get(app_id)
        if after is None:
            actions[app_id] = ["StopApplication"]
        elif before is None:
            actions[app_id] = ["StartApplication", "ScaleApplication"]
        elif app_id in restart or config_changed(before, after):
            actions[app_id] = ["RestartApplication"]
        else:
            actions[app_id] = ["ScaleApplication"]
    steps: list[list[Action]] = []
    for level in _dependency_levels(target, list(actions)):
        width = max(len(actions[app_id]) for app_id in level)
        for position in range(width):
            step = [Action(actions[a][position], a) for a in level if position < len(actions[a])]
            steps.append(step)
    return Deployment(str(uuid.uuid4()), version, steps, dict(original), dict(target), started_at=version)


def _dependency_levels(apps: Mapping[str, dict | None], app_ids: list[str]) -> list[list[str]]:
    """Apps grouped so that every app comes after the apps of this deployment it depends on."""
    remaining = set(app_ids)
    levels: list[list[str]] = []
    while remaining:
        level = sorted(
            a
            for a in remaining
            if not any(d in remaining for d in ((apps.get(a) or {}).get("dependencies") or []) if d != a)
        )
        if not level:  # a cycle (validation refuses them; be safe anyway)
            level = sorted(remaining)
        levels.append(level)
        remaining -= set(level)
    return levels


@dataclass
class Decision:
    launch: int = 0
    kill: list[MarathonTask] = field(default_factory=list)
    done: bool = False


def kill_order(tasks: Sequence[MarathonTask], kill_selection: str) -> list[MarathonTask]:
    """Which tasks go first: not-running ones always, then the youngest (default) or the oldest."""
    youngest_first = kill_selection != "OLDEST_FIRST"
    return sorted(
        tasks,
        key=lambda t: (t.is_running, -t.staged_epoch if youngest_first else t.staged_epoch),
    )


def converge(
    app: Mapping[str, Any],
    tasks: Sequence[MarathonTask],
    queued: int,
    healthy: Callable[[MarathonTask], bool],
    rolling: bool,
    dying: int = 0,
) -> Decision:
    """What to do now for `app` given its active `tasks` and `queued` launches not yet placed.

    With `rolling`, tasks launched with an older configuration are replaced while never going below
    `minimumHealthCapacity` * instances healthy tasks nor above (1 + `maximumOverCapacity`) * instances
    tasks — counting the `dying` ones (killed, not yet gone), so that the agents never run more. Without
    `rolling` (no deployment, or a pure scaling), only the count is kept.
    """
    instances = int(app["instances"])
    config = (app.get("versionInfo") or {}).get("lastConfigChangeAt")
    outdated = [t for t in tasks if rolling and t.config_version != config]
    current = [t for t in tasks if not (rolling and t.config_version != config)]
    current_total = len(current) + queued
    selection = app.get("killSelection", "YOUNGEST_FIRST")
    if not outdated:
        if current_total > instances:
            surplus = current_total - instances
            from_queue = min(queued, surplus)
            return Decision(launch=-from_queue, kill=kill_order(current, selection)[: surplus - from_queue])
        # Done only once the killed tasks are gone too: a deployment never ends with extra tasks alive.
        done = len(current) == instances and all(healthy(t) for t in current) and dying == 0
        return Decision(launch=instances - current_total, done=done and queued == 0)
    strategy = app.get("upgradeStrategy") or {}
    minimum_healthy = math.ceil(instances * float(strategy.get("minimumHealthCapacity", 1.0)) - 1e-9)
    maximum_total = math.floor(instances * (1 + float(strategy.get("maximumOverCapacity", 1.0))) + 1e-9)
    new_healthy = sum(1 for t in current if healthy(t))
    old_alive = [t for t in outdated if t.is_running]
    # Outdated tasks that never ran do not keep the app healthy: kill them first, freely.
    kill = [t for t in outdated if not t.is_running]
    removable = max(0, len(old_alive) + new_healthy - minimum_healthy)
    if removable == 0 and minimum_healthy >= maximum_total and current_total == new_healthy:
        # minimumHealthCapacity 1 with maximumOverCapacity 0 could never move: allow one below, as Marathon does.
        removable = 1
    kill += kill_order(old_alive, selection)[:removable]
    # What is being killed (now or before) still runs until its agent confirms: it takes room too.
    room = maximum_total - (len(outdated) + current_total + dying)
    launch = max(0, min(instances - current_total, room))
    return Decision(launch=launch, kill=kill, done=False)
