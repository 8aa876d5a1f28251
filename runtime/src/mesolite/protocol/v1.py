"""Helpers for Mesos v1 JSON messages: ids, timestamps, status uuids, TaskStatus and event builders.

Field names are exactly those of Mesos's v1 protobufs rendered as JSON (`task_id`, `agent_id`,
`framework_id`, each `{"value": ...}`; bytes fields such as `uuid` base64-encoded; timestamps float
seconds since the epoch).
"""

from __future__ import annotations

import base64
import json
import time
import uuid as uuid_module
from collections.abc import Mapping
from typing import Any

TASK_STATES = (
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_FINISHED",
    "TASK_FAILED",
    "TASK_KILLED",
    "TASK_ERROR",
    "TASK_LOST",
    "TASK_DROPPED",
    "TASK_UNREACHABLE",
    "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
    "TASK_UNKNOWN",
)
TERMINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_LOST",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)
# The v1 JSON key of each state's count in /master/state's framework and agent summaries.
STATE_COUNTER_KEYS = {state: state.lower() for state in TASK_STATES}


def now() -> float:
    """A v1 timestamp: float seconds since the epoch."""
    return time.time()


def id_value(value: str) -> dict[str, str]:
    """`{"value": value}`, the JSON of every Mesos id message."""
    return {"value": value}


def value_of(message: Any, field: str | None = None) -> str | None:
    """The `value` of an id message (or of `message[field]`); None when absent or malformed."""
    if field is not None:
        message = message.get(field) if isinstance(message, Mapping) else None
    if isinstance(message, Mapping):
        value = message.get("value")
        return value if isinstance(value, str) else None
    return None


def new_status_uuid() -> str:
    """A fresh status update uuid: 16 random bytes, base64 as v1 JSON renders `bytes`."""
    return base64.b64encode(uuid_module.uuid4().bytes).decode()


def is_terminal(state: str) -> bool:
    return state in TERMINAL_STATES


def task_status(
    task_id: str,
    state: str,
    *,
    agent_id: str | None = None,
    executor_id: str | None = None,
    source: str | None = None,
    reason: str | None = None,
    message: str | None = None,
    with_uuid: bool = True,
    timestamp: float | None = None,
    **extra: Any,
) -> dict:
    """A v1 `TaskStatus`. Updates without `uuid` (master-generated ones) need no acknowledgement."""
    if state not in TASK_STATES:
        raise ValueError(f"unknown task state {state!r}")
    status: dict[str, Any] = {"task_id": id_value(task_id), "state": state, "timestamp": timestamp or now()}
    if agent_id:
        status["agent_id"] = id_value(agent_id)
    if executor_id:
        status["executor_id"] = id_value(executor_id)
    if source:
        status["source"] = source
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if with_uuid:
        status["uuid"] = new_status_uuid()
    status.update(extra)
    return status


def event(event_type: str, body: Mapping | None = None) -> dict:
    """A v1 scheduler (or agent-protocol) event: `{"type": "OFFERS", "offers": {...}}`."""
    result: dict[str, Any] = {"type": event_type}
    if body is not None:
        result[event_type.lower()] = dict(body)
    return result


def encode_json(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode()
