"""Readiness checks (`readinessChecks`): during a deployment, a task the deployment started counts only once
its readiness endpoint answers one of `httpStatusCodesForReady` (and its health checks pass).

Marathon runs them itself, against the task's host and the port named `portName`, every `intervalSeconds`,
from the moment the task runs (or, for an app with health checks, is healthy) until it is ready. The latest
result of each check is what /v2/deployments shows as the step's `readinessCheckResults`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from mesolite.marathon import health
from mesolite.marathon.app_definition import READINESS_CHECK_DEFAULTS, host_ports
from mesolite.marathon.tasks import MarathonTask

# The actions of a deployment that start tasks: their new tasks must be ready before the step is done.
GATED_ACTIONS = frozenset({"StartApplication", "ScaleApplication", "RestartApplication"})


def checks_of(app: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The app's readiness checks with Marathon's defaults filled in (apps stored before may lack some)."""
    return [{**READINESS_CHECK_DEFAULTS, **check} for check in app.get("readinessChecks") or []]


def check_port(check: Mapping[str, Any], app: Mapping[str, Any], task: MarathonTask) -> int | None:
    """The task's host port of the app's port named `portName` (None if the app or task has no such port)."""
    for index, port in enumerate(host_ports(app)):
        if port.get("name") == check["portName"]:
            return task.ports[index] if index < len(task.ports) else None
    return None


def result_json(check: Mapping[str, Any], task_id: str, ready: bool, answer: health.HttpAnswer | None) -> dict:
    """Marathon's ReadinessCheckResult; `lastResponse` only with `preserveLastResponse`."""
    result: dict[str, Any] = {"name": check["name"], "taskId": task_id, "ready": ready}
    if check.get("preserveLastResponse") and answer is not None:
        result["lastResponse"] = {"status": answer.status, "contentType": answer.content_type, "body": answer.body}
    return result


async def probe(
    check: Mapping[str, Any], task: MarathonTask, port: int, session: aiohttp.ClientSession
) -> dict[str, Any]:
    """One readiness check of `task`: its result (ready or not; no answer is not ready)."""
    scheme = "https" if check["protocol"] == "HTTPS" else "http"
    url = f"{scheme}://{task.host}:{port}{check['path']}"
    try:
        answer = await health.http_get(url, float(check["timeoutSeconds"]), session)
    except (TimeoutError, OSError, aiohttp.ClientError):
        return result_json(check, task.id, False, None)
    return result_json(check, task.id, answer.status in check["httpStatusCodesForReady"], answer)
