"""What the agent accepts from the master: ids, TaskInfos and kill policies checked field by field.

The master validates calls too, but the agent stands on its own (Mesos's agent re-validates every task):
a field of the wrong type must become a TASK_ERROR naming that field, never an exception in the agent or a
crash of the task's executor later. Ids become directory names in the checkpoint and the sandbox, so they
follow Mesos's `validateID`: at most 255 bytes (a file name), no `/`, no control characters, not `.` or `..`.
Only the shapes are checked here; what a containerizer can run is its own `validate`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mesolite.resources import Resources

MAX_ID_BYTES = 255  # NAME_MAX: an id is a directory name
# A grace period longer than this (about 31 years) is a mistake, not a policy; it would also overflow timers.
MAX_GRACE_PERIOD_NANOSECONDS = 10**18
CONTAINER_TYPES = ("MESOS", "DOCKER")
HEALTH_CHECK_TYPES = ("COMMAND", "HTTP", "TCP")


class InvalidField(ValueError):
    """A field the agent cannot use; the message names it."""


def id_problem(value: Any, field: str) -> str | None:
    """Why `value` (the string inside an id message) cannot be an id, or None."""
    if not isinstance(value, str) or not value:
        return f"{field} must be a non-empty string"
    if len(value.encode("utf-8", errors="surrogatepass")) > MAX_ID_BYTES:
        return f"{field} is longer than {MAX_ID_BYTES} bytes"
    if value in (".", ".."):
        return f"{field} '{value}' is not allowed"
    if "/" in value or any(ord(character) < 0x20 or ord(character) == 0x7F for character in value):
        return f"{field} must not contain '/' or control characters"
    return None


def id_of(message: Any, field: str) -> str:
    """The valid id inside `{"value": ...}`; `InvalidField` otherwise."""
    value = message.get("value") if isinstance(message, Mapping) else None
    problem = id_problem(value, field + ".value") if isinstance(message, Mapping) else f"{field} must be an object"
    if problem:
        raise InvalidField(problem)
    return value


def grace_period_seconds(kill_policy: Any, field: str = "kill_policy") -> float | None:
    """The grace period of a v1 `KillPolicy` in seconds, None when it has none; `InvalidField` when malformed.

    `nanoseconds` is an int64: protobuf's JSON form writes it as a string, so both are accepted."""
    if kill_policy is None:
        return None
    if not isinstance(kill_policy, Mapping):
        raise InvalidField(f"{field} must be an object")
    grace_period = kill_policy.get("grace_period")
    if grace_period is None:
        return None
    if not isinstance(grace_period, Mapping):
        raise InvalidField(f"{field}.grace_period must be an object")
    nanoseconds = grace_period.get("nanoseconds")
    if nanoseconds is None:
        return None
    if isinstance(nanoseconds, str) and nanoseconds.strip().lstrip("-").isdigit() and len(nanoseconds) <= 20:
        nanoseconds = int(nanoseconds)
    if not isinstance(nanoseconds, int) or isinstance(nanoseconds, bool):
        raise InvalidField(f"{field}.grace_period.nanoseconds must be an integer")
    if not 0 <= nanoseconds <= MAX_GRACE_PERIOD_NANOSECONDS:
        raise InvalidField(f"{field}.grace_period.nanoseconds must be between 0 and {MAX_GRACE_PERIOD_NANOSECONDS}")
    return nanoseconds / 1e9


def task_problem(task: Any) -> str | None:
    """Why the agent cannot accept this TaskInfo (a message naming the field), or None."""
    try:
        check_task(task)
    except InvalidField as error:
        return str(error)
    return None


def check_task(task: Any) -> None:
    if not isinstance(task, Mapping):
        raise InvalidField("task must be an object")
    id_of(task.get("task_id"), "task_id")
    _optional(task, "name", str, "task")
    _optional(task, "agent_id", Mapping, "task")
    resources = _optional(task, "resources", list, "task")
    if resources is not None:
        try:
            Resources.from_protobuf_json(resources)
        except Exception as error:  # the parser's errors vary with the malformation; all mean the same here
            raise InvalidField(f"resources: {error}"[:500]) from None
    command = _optional(task, "command", Mapping, "task")
    if command is not None:
        _check_command(command, "command")
    container = _optional(task, "container", Mapping, "task")
    if container is not None:
        kind = _optional(container, "type", str, "container")
        if kind is not None and kind not in CONTAINER_TYPES:
            raise InvalidField(f"container.type must be one of {', '.join(CONTAINER_TYPES)}")
        _optional(container, "docker", Mapping, "container")
        for index, volume in enumerate(_optional(container, "volumes", list, "container") or []):
            if not isinstance(volume, Mapping):
                raise InvalidField(f"container.volumes[{index}] must be an object")
    grace_period_seconds(task.get("kill_policy"))
    health_check = _optional(task, "health_check", Mapping, "task")
    if health_check is not None:
        _check_health_check(health_check)
    labels = _optional(task, "labels", Mapping, "task")
    if labels is not None:
        for index, label in enumerate(_optional(labels, "labels", list, "labels") or []):
            if not isinstance(label, Mapping) or not isinstance(label.get("key"), str):
                raise InvalidField(f"labels.labels[{index}] must be an object with a string key")
    _optional(task, "discovery", Mapping, "task")


def framework_problem(framework: Any) -> str | None:
    """Why the agent cannot accept this FrameworkInfo, or None."""
    if not isinstance(framework, Mapping):
        return "framework must be an object"
    try:
        id_of(framework.get("id"), "framework.id")
        for name in ("user", "name", "role", "principal", "hostname"):
            _optional(framework, name, str, "framework")
    except InvalidField as error:
        return str(error)
    return None


def _optional(message: Mapping, name: str, kind: type, where: str) -> Any:
    """`message[name]` when present and of `kind`; `InvalidField` when present and of another type."""
    value = message.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
        article = {Mapping: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(kind, kind.__name__)
        prefix = "" if where in ("task",) else f"{where}."
        raise InvalidField(f"{prefix}{name} must be {article}")
    return value


def _check_command(command: Mapping, where: str) -> None:
    _optional(command, "value", str, where)
    _optional(command, "shell", bool, where)
    _optional(command, "user", str, where)
    for index, argument in enumerate(_optional(command, "arguments", list, where) or []):
        if not isinstance(argument, str):
            raise InvalidField(f"{where}.arguments[{index}] must be a string")
    environment = _optional(command, "environment", Mapping, where)
    if environment is not None:
        for index, variable in enumerate(_optional(environment, "variables", list, f"{where}.environment") or []):
            field = f"{where}.environment.variables[{index}]"
            if not isinstance(variable, Mapping):
                raise InvalidField(f"{field} must be an object")
            _optional(variable, "name", str, field)
            _optional(variable, "value", str, field)
            _optional(variable, "type", str, field)
    for index, uri in enumerate(_optional(command, "uris", list, where) or []):
        field = f"{where}.uris[{index}]"
        if not isinstance(uri, Mapping):
            raise InvalidField(f"{field} must be an object")
        _optional(uri, "value", str, field)
        _optional(uri, "output_file", str, field)
        for flag in ("executable", "extract", "cache"):
            _optional(uri, flag, bool, field)


def _check_health_check(check: Mapping) -> None:
    kind = _optional(check, "type", str, "health_check")
    if kind is not None and kind not in HEALTH_CHECK_TYPES:
        raise InvalidField(f"health_check.type must be one of {', '.join(HEALTH_CHECK_TYPES)}")
    for name in ("delay_seconds", "interval_seconds", "timeout_seconds", "grace_period_seconds"):
        value = check.get(name)
        if value is not None and (
            not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 10**9
        ):
            raise InvalidField(f"health_check.{name} must be a number of seconds between 0 and 1e9")
    failures = check.get("consecutive_failures")
    if failures is not None and (not isinstance(failures, int) or isinstance(failures, bool) or failures < 0):
        raise InvalidField("health_check.consecutive_failures must be a non-negative integer")
    command = _optional(check, "command", Mapping, "health_check")
    if command is not None:
        _check_command(command, "health_check.command")
    http = _optional(check, "http", Mapping, "health_check")
    if http is not None or kind == "HTTP":
        _check_port((http or {}).get("port"), "health_check.http.port", required=kind == "HTTP")
        _optional(http or {}, "path", str, "health_check.http")
        _optional(http or {}, "scheme", str, "health_check.http")
    tcp = _optional(check, "tcp", Mapping, "health_check")
    if tcp is not None or kind == "TCP":
        _check_port((tcp or {}).get("port"), "health_check.tcp.port", required=True)


def _check_port(port: Any, field: str, required: bool) -> None:
    if port is None and not required:
        return
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise InvalidField(f"{field} must be a port number (1-65535)")
