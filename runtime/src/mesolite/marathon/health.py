"""Health checks run by Marathon itself (HTTP, HTTPS, TCP against a task's host:port) and what their results mean.

Checks that Mesos runs (COMMAND, MESOS_HTTP, MESOS_HTTPS, MESOS_TCP) travel in the TaskInfo instead;
their verdict arrives as `healthy` in status updates. Both end up in the task's health, and a task whose
checks failed `maxConsecutiveFailures` times in a row after its grace period is killed and replaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from mesolite.marathon.app_definition import MARATHON_SIDE_PROTOCOLS
from mesolite.marathon.tasks import HealthResult, MarathonTask
from mesolite.marathon.timestamps import now_timestamp


@dataclass
class ProbeOutcome:
    healthy: bool
    cause: str | None = None


def check_port(check: Mapping[str, Any], task: MarathonTask) -> int | None:
    if check.get("port"):
        return int(check["port"])
    index = check.get("portIndex", 0)
    return task.ports[index] if index < len(task.ports) else None


@dataclass
class HttpAnswer:
    status: int
    content_type: str
    body: str


# The most of an answer's body kept (readiness checks may preserve it for /v2/deployments).
MAX_ANSWER_BODY = 64 * 1024


async def http_get(url: str, timeout_seconds: float, session: aiohttp.ClientSession) -> HttpAnswer:
    """One GET as Marathon's own checks send it (no redirects followed, task certificates not verified —
    tasks use self-signed ones); raises TimeoutError, OSError or aiohttp.ClientError when there is no answer."""
    async with session.get(
        url, timeout=aiohttp.ClientTimeout(total=timeout_seconds), ssl=False, allow_redirects=False
    ) as r:
        body = await r.content.read(MAX_ANSWER_BODY)
        return HttpAnswer(r.status, r.headers.get("Content-Type", ""), body.decode(errors="replace"))


async def probe(check: Mapping[str, Any], host: str, port: int, session: aiohttp.ClientSession) -> ProbeOutcome:
    """One attempt of a Marathon-side check; HTTP(S) is healthy for 200-399 (and 1xx with ignoreHttp1xx)."""
    timeout = float(check.get("timeoutSeconds", 20))
    protocol = check["protocol"]
    try:
        if protocol == "TCP":
            _reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.close()
            return ProbeOutcome(True)
        scheme = "https" if protocol == "HTTPS" else "http"
        url = f"{scheme}://{host}:{port}{check.get('path') or '/'}"
        answer = await http_get(url, timeout, session)
        if 200 <= answer.status < 400 or (check.get("ignoreHttp1xx") and 100 <= answer.status < 200):
            return ProbeOutcome(True)
        return ProbeOutcome(False, f"{url} answered HTTP {answer.status}")
    except TimeoutError:
        return ProbeOutcome(False, f"no answer from {host}:{port} within {timeout:g}s")
    except (OSError, aiohttp.ClientError) as error:
        return ProbeOutcome(False, f"{host}:{port}: {error.__class__.__name__}: {error}")


@dataclass
class Verdict:
    changed: bool  # alive flipped (health_status_changed_event)
    kill: bool  # too many failures: kill and replace the task
    counted: bool  # False when a failure was ignored (grace period)


def record(
    result: HealthResult, outcome: ProbeOutcome, check: Mapping[str, Any], started_epoch: float | None, now: float
) -> Verdict:
    """Fold one probe outcome into `result` (in place), Marathon's way."""
    stamp = now_timestamp()
    was_alive = result.alive
    if outcome.healthy:
        result.alive = True
        result.consecutive_failures = 0
        result.last_success = stamp
        result.first_success = result.first_success or stamp
        return Verdict(changed=not was_alive, kill=False, counted=True)
    in_grace = result.first_success is None and (
        started_epoch is None or now < started_epoch + float(check.get("gracePeriodSeconds", 300))
    )
    result.last_failure = stamp
    result.last_failure_cause = outcome.cause
    if in_grace:
        return Verdict(changed=False, kill=False, counted=False)
    result.alive = False
    result.consecutive_failures += 1
    limit = int(check.get("maxConsecutiveFailures", 3))
    return Verdict(changed=was_alive, kill=limit > 0 and result.consecutive_failures >= limit, counted=True)


def marathon_side_checks(app: Mapping[str, Any]) -> list[tuple[int, Mapping[str, Any]]]:
    return [(i, c) for i, c in enumerate(app.get("healthChecks") or []) if c["protocol"] in MARATHON_SIDE_PROTOCOLS]


def check_count(app: Mapping[str, Any]) -> int:
    """How many verdicts make a task healthy: each Marathon-side check plus one for Mesos's (at most one)."""
    checks = app.get("healthChecks") or []
    marathon_side = sum(1 for c in checks if c["protocol"] in MARATHON_SIDE_PROTOCOLS)
    return marathon_side + (1 if len(checks) > marathon_side else 0)
