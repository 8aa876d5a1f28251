"""App definitions: Marathon's fields and defaults, validation that names every bad field, and merging updates.

An app travels as the JSON object Marathon users know; `normalize_app` turns what a client sent into
the complete, canonical form (every field present, defaults filled in, ids absolute) or raises
`ValidationError` listing each problem as Marathon does:
`{"message": "Object is not valid", "details": [{"path": "/instances", "errors": ["..."]}]}`.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from mesolite.marathon.constraints import parse_constraint
from mesolite.marathon.paths import ROOT, PathError, canonical_path, parent_of

DEFAULT_HEALTH_CHECK = {
    "gracePeriodSeconds": 300,
    "intervalSeconds": 60,
    "timeoutSeconds": 20,
    "maxConsecutiveFailures": 3,
    "delaySeconds": 15,
    "ignoreHttp1xx": False,
}
HEALTH_CHECK_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")
# Checks that Marathon itself runs against host:port (the others go to Mesos in the TaskInfo).
MARATHON_SIDE_PROTOCOLS = ("HTTP", "HTTPS", "TCP")
PORT_PROTOCOLS = ("tcp", "udp", "udp,tcp", "tcp,udp")
DOCKER_NETWORKS = ("BRIDGE", "HOST", "USER", "NONE")
KILL_SELECTIONS = ("YOUNGEST_FIRST", "OLDEST_FIRST")
PORT_NAME = re.compile(r"^[a-z0-9-]+$")
LABEL_OR_ENV_NAME = re.compile(r"^\S+$")

# -- limits: what a definition may hold (each refused with 422 naming the field) ------------------------
# Marathon's own field types where it has them: counts and seconds are int32.
INT32_MAX = 2**31 - 1
# cpus, mem (MB), disk (MB): far beyond any machine, well inside Mesos's fixed-point scalars (int64/1000).
MAX_SCALAR_RESOURCE = 1_000_000_000
# backoffFactor: Marathon only asks for >= 1; past this the second failure already hits maxLaunchDelaySeconds.
MAX_BACKOFF_FACTOR = 100.0
# Any other number anywhere in a definition (ipAddress, volumes, ...): exactly representable integers only.
MAX_ANY_NUMBER = 2**53
# An id becomes a Mesos task id (`prod_web.<uuid>`, 37 more characters) that must stay within Mesos's 255.
MAX_ID_LENGTH = 200
MAX_ID_DEPTH = 32
# Linux refuses a single argument or environment string of 128 KiB or more (MAX_ARG_STRLEN): such a
# `cmd` (one argument of `sh -c`), argument or variable could never start.
MAX_ARGUMENT_BYTES = 128 * 1024 - 1
MAX_ENV_VARIABLES = 1024
MAX_LABELS = 256
MAX_LABEL_KEY_LENGTH = 255
MAX_LABEL_VALUE_BYTES = 64 * 1024

# Fields Marathon reports but does not take as input; clients that GET then PUT send them back.
READ_ONLY_FIELDS = frozenset(
    {
        "tasks",
        "tasksRunning",
        "tasksStaged",
        "tasksHealthy",
        "tasksUnhealthy",
        "deployments",
        "lastTaskFailure",
        "taskStats",
        "readinessCheckResults",
        "versionInfo",
        "waiting",
    }
)


def default_app() -> dict[str, Any]:
    """Every field of an app with Marathon's defaults (id, version and versionInfo are set later)."""
    return {
        "id": None,
        "cmd": None,
        "args": None,
        "user": None,
        "env": {},
        "instances": 1,
        "cpus": 1.0,
        "mem": 128.0,
        "disk": 0.0,
        "gpus": 0,
        "executor": "",
        "constraints": [],
        "uris": [],
        "fetch": [],
        "storeUrls": [],
        "backoffSeconds": 1,
        "backoffFactor": 1.15,
        "maxLaunchDelaySeconds": 300,
        "container": None,
        "healthChecks": [],
        "readinessChecks": [],
        "dependencies": [],
        "upgradeStrategy": {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0},
        "labels": {},
        "acceptedResourceRoles": None,
        "ipAddress": None,
        "version": None,
        "residency": None,
        "secrets": {},
        "taskKillGracePeriodSeconds": None,
        "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0},
        "killSelection": "YOUNGEST_FIRST",
        "portDefinitions": None,
        "requirePorts": False,
        "networks": None,
        "role": None,
    }


KNOWN_FIELDS = frozenset(default_app()) | {"ports", "versionInfo"}


class ValidationError(ValueError):
    """One or more invalid fields; `details` pairs a JSON path (`/instances`) with its reasons."""

    def __init__(self, violations: list[tuple[str, str]]):
        self.violations = violations
        super().__init__("; ".join(f"{path}: {reason}" for path, reason in violations))

    def details(self) -> list[dict[str, Any]]:
        grouped: dict[str, list[str]] = {}
        for path, reason in self.violations:
            grouped.setdefault(path, []).append(reason)
        return [{"path": path, "errors": errors} for path, errors in grouped.items()]

    def to_json(self) -> dict[str, Any]:
        return {"message": "Object is not valid", "details": self.details()}


class _Checker:
    """Collects violations while checking one value at a time; helpers return the cleaned value."""

    def __init__(self) -> None:
        self.violations: list[tuple[str, str]] = []

    def fail(self, path: str, reason: str) -> None:
        self.violations.append((path, reason))

    def number(
        self, path: str, value: Any, minimum: float | None = 0, maximum: float | None = None, integer: bool = False
    ) -> Any:
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self.fail(path, f"must be {kind}, got {_shown(value)}")
            return None
        if integer and value != int(value):
            self.fail(path, f"must be {kind}, got {value}")
            return None
        if minimum is not None and value < minimum:
            self.fail(path, f"got {value}, expected {minimum} or more")
            return None
        if maximum is not None and value > maximum:
            self.fail(path, f"got {value}, expected {maximum} or less")
            return None
        return int(value) if integer else float(value)

    def string(
        self,
        path: str,
        value: Any,
        allow_empty: bool = True,
        nullable: bool = False,
        max_bytes: int | None = None,
    ) -> Any:
        if value is None and nullable:
            return None
        if not isinstance(value, str):
            self.fail(path, f"must be a string, got {_shown(value)}")
            return None
        if not allow_empty and not value.strip():
            self.fail(path, "must not be empty")
            return None
        if max_bytes is not None and len(value) > max_bytes // 4 and _utf8_length(value) > max_bytes:
            self.fail(path, f"is {_utf8_length(value)} bytes long, the limit is {max_bytes}")
            return None
        return value

    def boolean(self, path: str, value: Any) -> Any:
        if not isinstance(value, bool):
            self.fail(path, f"must be true or false, got {_shown(value)}")
            return None
        return value

    def choice(self, path: str, value: Any, choices: tuple[str, ...]) -> Any:
        if value not in choices:
            self.fail(path, f"got {_shown(value)}, expected one of {', '.join(choices)}")
            return None
        return value

    def object(self, path: str, value: Any) -> dict | None:
        if not isinstance(value, Mapping):
            self.fail(path, f"must be an object, got {_shown(value)}")
            return None
        return dict(value)

    def array(self, path: str, value: Any) -> list | None:
        if not isinstance(value, list):
            self.fail(path, f"must be an array, got {_shown(value)}")
            return None
        return value

    def objects_in(self, path: str, items: list) -> Iterator[tuple[str, dict]]:
        """Each entry of an array that is an object, with its path `path(index)`; any other entry is a violation.

        A generator, so that an entry's own violations come before those of the entries after it.
        """
        for index, item in enumerate(items):
            where = f"{path}({index})"
            entry = self.object(where, item)
            if entry is not None:
                yield where, entry

    def given_numbers(
        self,
        path: str,
        raw: Mapping,
        minimums: Mapping[str, float],
        maximum: float | None = INT32_MAX,
        integer: bool = False,
    ) -> dict[str, Any]:
        """The valid numbers `raw` gives for the fields named in `minimums` (each with its own minimum).

        A field that is missing or invalid is left out, so that the caller's default stays.
        """
        numbers = {}
        for name, minimum in minimums.items():
            if name in raw:
                number = self.number(f"{path}/{name}", raw[name], minimum=minimum, maximum=maximum, integer=integer)
                if number is not None:
                    numbers[name] = number
        return numbers

    def string_list(self, path: str, value: Any, max_bytes: int | None = None) -> list[str] | None:
        items = self.array(path, value)
        if items is None:
            return None
        for index, item in enumerate(items):
            self.string(f"{path}({index})", item, max_bytes=max_bytes)
        return list(items)

    def string_map(
        self,
        path: str,
        value: Any,
        allow_secrets: bool = False,
        max_entries: int = MAX_LABELS,
        max_key_length: int = MAX_LABEL_KEY_LENGTH,
        max_value_bytes: int = MAX_LABEL_VALUE_BYTES,
    ) -> dict | None:
        mapping = self.object(path, value)
        if mapping is None:
            return None
        if len(mapping) > max_entries:
            self.fail(path, f"has {len(mapping)} entries, the limit is {max_entries}")
            return None
        for key, item in mapping.items():
            where = f"{path}/{_clipped(key)}"
            if not LABEL_OR_ENV_NAME.match(key):
                self.fail(where, "names must not be empty or contain whitespace")
            elif len(key) > max_key_length:
                self.fail(where, f"the name is {len(key)} characters long, the limit is {max_key_length}")
            elif allow_secrets and isinstance(item, Mapping) and set(item) == {"secret"}:
                self.string(f"{where}/secret", item["secret"], allow_empty=False, max_bytes=max_key_length)
            elif not isinstance(item, str):
                self.fail(where, f"must be a string, got {_shown(item)}")
            else:
                self.string(where, item, max_bytes=max_value_bytes)
        return mapping


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _clipped(text: str, length: int = 64) -> str:
    """`text` short enough to quote in an error (a 10 MB value must not come back in every message)."""
    return text if len(text) <= length else f"{text[:length]}... ({len(text)} characters)"


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{_clipped(value)}'"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, Mapping):
        return "an object"
    return str(value)


# -- the whole app ---------------------------------------------------------------------------------


def normalize_app(raw: Any, base_group: str = ROOT, app_id: str | None = None) -> dict[str, Any]:
    """The complete canonical app for what a client sent; `ValidationError` naming every bad field.

    `app_id`, when given, is the id from the URL (PUT /v2/apps/{id}); an `id` in the body must match it.
    """
    if not isinstance(raw, Mapping):
        raise ValidationError([("/", f"an app definition must be a JSON object, got {_shown(raw)}")])
    check = _Checker()
    for name in raw:
        if name not in KNOWN_FIELDS and name not in READ_ONLY_FIELDS:
            check.fail(f"/{name}", "is not a field of an app definition")
    raw = _with_network_from_networks(raw)
    app = default_app()
    app["id"] = _app_id(check, raw, base_group, app_id)
    parent = parent_of(app["id"]) if app["id"] else base_group
    for name, normalizer in _FIELD_NORMALIZERS.items():
        if name in raw and raw[name] is not None:
            value = normalizer(check, f"/{name}", raw[name], parent)
            if value is not None:
                app[name] = value
        elif name in raw and name in _NULLABLE_FIELDS:
            app[name] = None
    _normalize_ports(check, raw, app)
    _cross_check(check, raw, app)
    if not check.violations:
        # The fields checked one by one above have tighter bounds; this covers the free-form ones.
        for path, number in _out_of_range_numbers(app):
            check.fail(path, f"got {number}, expected a number between -{MAX_ANY_NUMBER} and {MAX_ANY_NUMBER}")
    if check.violations:
        raise ValidationError(check.violations)
    return app


NETWORK_MODES = {"host": "HOST", "container/bridge": "BRIDGE", "container": "USER"}


def _with_network_from_networks(raw: Mapping) -> Mapping:
    """Marathon 1.5's `networks: [{"mode": "container/bridge"}]` as the Docker network, when none is given."""
    networks, container = raw.get("networks"), raw.get("container")
    if not (isinstance(networks, list) and networks and isinstance(networks[0], Mapping)):
        return raw
    if not (isinstance(container, Mapping) and isinstance(container.get("docker"), Mapping)):
        return raw
    mode = NETWORK_MODES.get(str(networks[0].get("mode", "container")))
    if mode is None or container["docker"].get("network") is not None:
        return raw
    return {**raw, "container": {**container, "docker": {**container["docker"], "network": mode}}}


def _app_id(check: _Checker, raw: Mapping, base_group: str, app_id: str | None) -> str | None:
    body_id = raw.get("id")
    if body_id is None and app_id is None:
        check.fail("/id", "is required")
        return None
    try:
        resolved = canonical_path(body_id, base_group) if body_id is not None else app_id
        if app_id is not None and resolved != app_id:
            check.fail("/id", f"'{body_id}' does not match the app id '{app_id}' of the URL")
            return None
    except PathError as error:
        check.fail("/id", str(error))
        return None
    if resolved == ROOT:
        check.fail("/id", "the root group '/' cannot be an app")
        return None
    problem = path_limit_problem(resolved)
    if problem:
        check.fail("/id", problem)
        return None
    return resolved


def path_limit_problem(path_id: str) -> str | None:
    """Why the absolute id `path_id` is too long or too deep for a new app or group; None when it is fine.

    Only new ids are checked: an id stored before these limits can still be read and deleted.
    """
    if len(path_id) > MAX_ID_LENGTH:
        return f"'{_clipped(path_id)}' is {len(path_id)} characters long, the limit is {MAX_ID_LENGTH}"
    depth = path_id.count("/")
    if depth > MAX_ID_DEPTH:
        return f"'{_clipped(path_id)}' is {depth} levels deep, the limit is {MAX_ID_DEPTH}"
    return None


def _cross_check(check: _Checker, raw: Mapping, app: dict) -> None:
    has_cmd, has_args = app["cmd"] is not None, app["args"] is not None
    container = app["container"]
    if has_cmd and has_args:
        check.fail("/", "an app takes either 'cmd' or 'args', not both")
    if not has_cmd and not has_args and not (container and container.get("docker")):
        check.fail("/", "an app must have a 'cmd', 'args' or a Docker container image")
    if not any(app[name] for name in ("cpus", "mem", "disk", "gpus")):
        # Mesos refuses a task that uses no resources; and nothing would bound how many fit in one offer.
        check.fail("/", "a task must use some resources: cpus, mem, disk or gpus above 0")
    ports_count = len(host_ports(app))
    for index, health_check in enumerate(app["healthChecks"]):
        port_index = health_check.get("portIndex")
        if port_index is not None and port_index >= max(ports_count, 0) and health_check["protocol"] != "COMMAND":
            check.fail(
                f"/healthChecks({index})/portIndex",
                f"portIndex {port_index} is out of range: the app has {ports_count} port(s)",
            )
    port_names = {port.get("name") for port in host_ports(app)} - {None}
    for index, readiness in enumerate(app["readinessChecks"] or []):
        if readiness["portName"] not in port_names:
            check.fail(
                f"/readinessChecks({index})/portName",
                f"no port is named '{readiness['portName']}' (the app's port names: {sorted(port_names)})",
            )
    strategy = app["upgradeStrategy"]
    if app["residency"] is not None and strategy.get("maximumOverCapacity", 0) > 0:
        check.fail("/upgradeStrategy/maximumOverCapacity", "must be 0 for resident apps")
    if app["maxLaunchDelaySeconds"] < app["backoffSeconds"]:
        check.fail("/maxLaunchDelaySeconds", "must not be smaller than backoffSeconds")


def host_ports(app: Mapping) -> list:
    """The ports a task of this app gets (portMappings in bridge/user networking, else portDefinitions)."""
    container = app.get("container") or {}
    if container.get("portMappings") is not None and network_of(app) in ("BRIDGE", "USER"):
        return [m for m in container["portMappings"] if m.get("hostPort") is not None]
    return app.get("portDefinitions") or []


def network_of(app: Mapping) -> str:
    container = app.get("container") or {}
    return (container.get("docker") or {}).get("network") or "HOST"


# -- single fields ---------------------------------------------------------------------------------


def _cmd(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    return check.string(path, value, allow_empty=False, max_bytes=MAX_ARGUMENT_BYTES)


def _args(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    return check.string_list(path, value, max_bytes=MAX_ARGUMENT_BYTES)


def _string(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    return check.string(path, value)


def _string_list(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    return check.string_list(path, value)


def _labels(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    return check.string_map(path, value)


def _env(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    return check.string_map(
        path,
        value,
        allow_secrets=True,
        max_entries=MAX_ENV_VARIABLES,
        max_key_length=MAX_LABEL_KEY_LENGTH,
        max_value_bytes=MAX_ARGUMENT_BYTES - MAX_LABEL_KEY_LENGTH - 1,
    )


def _object(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    return check.object(path, value)


def _non_negative(integer: bool = False, minimum: float = 0, maximum: float | None = INT32_MAX) -> Callable:
    def normalize(check: _Checker, path: str, value: Any, _parent: str) -> Any:
        return check.number(path, value, minimum=minimum, maximum=maximum, integer=integer)

    return normalize


def _boolean(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    return check.boolean(path, value)


def _kill_selection(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    return check.choice(path, value, KILL_SELECTIONS)


def _constraints(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    items = check.array(path, value)
    if items is None:
        return None
    result = []
    for index, item in enumerate(items):
        constraint, problem = parse_constraint(item)
        if problem:
            check.fail(f"{path}({index})", problem)
        elif constraint is not None:
            # Keep the client's form of the reference ["hostname","UNIQUE",""] but canonical operators.
            result.append(constraint.to_json())
    return result


def _dependencies(check: _Checker, path: str, value: Any, parent: str) -> Any:
    items = check.string_list(path, value)
    if items is None:
        return None
    result = []
    for index, item in enumerate(items):
        try:
            dependency = canonical_path(item, parent)
        except PathError as error:
            check.fail(f"{path}({index})", str(error))
            continue
        problem = path_limit_problem(dependency)
        if problem:
            check.fail(f"{path}({index})", problem)
        else:
            result.append(dependency)
    return result


def _fetch(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    items = check.array(path, value)
    if items is None:
        return None
    result = []
    for where, entry in check.objects_in(path, items):
        check.string(f"{where}/uri", entry.get("uri"), allow_empty=False)
        for flag in ("extract", "executable", "cache"):
            if flag in entry:
                check.boolean(f"{where}/{flag}", entry[flag])
        if entry.get("outputFile") is not None:
            check.string(f"{where}/outputFile", entry["outputFile"])
        result.append({"extract": True, "executable": False, "cache": False, **entry})
    return result


def _upgrade_strategy(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    strategy = check.object(path, value)
    if strategy is None:
        return None
    result = {"minimumHealthCapacity": 1.0, "maximumOverCapacity": 1.0}
    # Both are fractions of the app's instances.
    result.update(check.given_numbers(path, strategy, dict.fromkeys(result, 0), maximum=1))
    for name in strategy:
        if name not in result:
            check.fail(f"{path}/{name}", "is not a field of upgradeStrategy")
    return result


def _unreachable_strategy(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    if value == "disabled":
        return value
    strategy = check.object(path, value)
    if strategy is None:
        return None
    result = {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
    result.update(check.given_numbers(path, strategy, dict.fromkeys(result, 0), integer=True))
    if result["expungeAfterSeconds"] < result["inactiveAfterSeconds"]:
        check.fail(f"{path}/expungeAfterSeconds", "must not be smaller than inactiveAfterSeconds")
    return result


def _health_checks(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    items = check.array(path, value)
    if items is None:
        return None
    result = []
    for where, raw in check.objects_in(path, items):
        health_check: dict[str, Any] = {"protocol": "HTTP", **DEFAULT_HEALTH_CHECK}
        protocol = check.choice(f"{where}/protocol", raw.get("protocol", "HTTP"), HEALTH_CHECK_PROTOCOLS)
        health_check["protocol"] = protocol or "HTTP"
        minimums = {
            "gracePeriodSeconds": 0,
            "intervalSeconds": 1,
            "timeoutSeconds": 1,
            "maxConsecutiveFailures": 0,
            "delaySeconds": 0,
        }
        health_check.update(check.given_numbers(where, raw, minimums, integer=True))
        if "ignoreHttp1xx" in raw:
            health_check["ignoreHttp1xx"] = check.boolean(f"{where}/ignoreHttp1xx", raw["ignoreHttp1xx"])
        is_http = health_check["protocol"] in ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS")
        if "path" in raw and raw["path"] is not None:
            if not is_http:
                check.fail(f"{where}/path", f"is only allowed for HTTP(S) health checks, not {protocol}")
            elif check.string(f"{where}/path", raw["path"]) is not None:
                health_check["path"] = raw["path"]
        elif is_http:
            health_check["path"] = "/"
        if health_check["protocol"] == "COMMAND" or "command" in raw:
            command = raw.get("command")
            text = command.get("value") if isinstance(command, Mapping) else command
            if health_check["protocol"] != "COMMAND":
                check.fail(f"{where}/command", "is only allowed for COMMAND health checks")
            elif check.string(f"{where}/command", text, allow_empty=False) is not None:
                health_check["command"] = {"value": text}
        else:
            if "port" in raw and "portIndex" in raw:
                check.fail(f"{where}/port", "give either port or portIndex, not both")
            if "port" in raw:
                port = check.number(f"{where}/port", raw["port"], minimum=1, maximum=65535, integer=True)
                if port is not None:
                    health_check["port"] = port
            else:
                port_index = check.number(
                    f"{where}/portIndex", raw.get("portIndex", 0), minimum=0, maximum=65535, integer=True
                )
                if port_index is not None:
                    health_check["portIndex"] = port_index
        for name in raw:
            if name not in health_check and name not in ("command", "port", "portIndex", "path", "portName"):
                check.fail(f"{where}/{name}", "is not a field of a health check")
        result.append(health_check)
    return result


def _port_definitions(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    items = check.array(path, value)
    if items is None:
        return None
    result = []
    for where, raw in check.objects_in(path, items):
        definition = {"port": 0, "protocol": "tcp", "labels": {}}
        port = check.number(f"{where}/port", raw.get("port", 0), minimum=0, maximum=65535, integer=True)
        definition["port"] = port if port is not None else 0
        definition["protocol"] = check.choice(f"{where}/protocol", raw.get("protocol", "tcp"), PORT_PROTOCOLS)
        if raw.get("name") is not None:
            definition["name"] = _port_name(check, f"{where}/name", raw["name"])
        if raw.get("labels") is not None:
            definition["labels"] = check.string_map(f"{where}/labels", raw["labels"]) or {}
        for name in raw:
            if name not in definition and name not in ("name", "labels"):
                check.fail(f"{where}/{name}", "is not a field of a port definition")
        result.append(definition)
    _unique_ports(check, path, result, "port", "port")
    return result


def _port_name(check: _Checker, path: str, value: Any) -> Any:
    name = check.string(path, value, allow_empty=False)
    if name is not None and not PORT_NAME.match(name):
        check.fail(path, f"'{name}' is invalid: use lowercase letters, digits and hyphens")
        return None
    return name


def _unique_ports(check: _Checker, path: str, entries: list[dict], key: str, what: str) -> None:
    seen_ports: set[int] = set()
    seen_names: set[str] = set()
    for index, entry in enumerate(entries):
        port = entry.get(key)
        if port and port in seen_ports:
            check.fail(f"{path}({index})/{key}", f"{what} {port} is used twice; non-zero ports must be unique")
        if port:
            seen_ports.add(port)
        name = entry.get("name")
        if name and name in seen_names:
            check.fail(f"{path}({index})/name", f"port name '{name}' is used twice")
        if name:
            seen_names.add(name)


def _port_mappings(check: _Checker, path: str, value: Any, network: str) -> list | None:
    items = check.array(path, value)
    if items is None:
        return None
    result = []
    for where, raw in check.objects_in(path, items):
        default_host_port = None if network == "USER" else 0
        mapping: dict[str, Any] = {"containerPort": 0, "hostPort": default_host_port, "servicePort": 0}
        for name in ("containerPort", "hostPort", "servicePort"):
            if raw.get(name) is not None:
                mapping[name] = check.number(f"{where}/{name}", raw[name], minimum=0, maximum=65535, integer=True)
        mapping["protocol"] = check.choice(f"{where}/protocol", raw.get("protocol", "tcp"), PORT_PROTOCOLS)
        if raw.get("name") is not None:
            mapping["name"] = _port_name(check, f"{where}/name", raw["name"])
        mapping["labels"] = check.string_map(f"{where}/labels", raw.get("labels") or {}) or {}
        for name in raw:
            if name not in mapping and name != "name":
                check.fail(f"{where}/{name}", "is not a field of a port mapping")
        result.append(mapping)
    _unique_ports(check, path, result, "hostPort", "hostPort")
    _unique_ports(check, path, result, "servicePort", "servicePort")
    return result


def _container(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    raw = check.object(path, value)
    if raw is None:
        return None
    docker_raw = raw.get("docker")
    kind = check.choice(f"{path}/type", raw.get("type", "DOCKER"), ("DOCKER", "MESOS"))
    container: dict[str, Any] = {"type": kind or "DOCKER", "volumes": []}
    if kind == "DOCKER" and docker_raw is None:
        check.fail(f"{path}/docker", "is required for a DOCKER container")
    network = "HOST"
    if docker_raw is not None:
        docker = check.object(f"{path}/docker", docker_raw)
        if docker is not None:
            container["docker"], network = _docker(check, f"{path}/docker", docker)
    mappings_from_docker = (docker_raw or {}).get("portMappings") if isinstance(docker_raw, Mapping) else None
    mappings = raw.get("portMappings")
    if mappings is not None and mappings_from_docker is not None and mappings != mappings_from_docker:
        check.fail(f"{path}/portMappings", "give portMappings either in container or in container.docker, not both")
    chosen, where = (
        (mappings, f"{path}/portMappings")
        if mappings is not None
        else (mappings_from_docker, f"{path}/docker/portMappings")
    )
    if chosen is not None:
        if network not in ("BRIDGE", "USER") and chosen:
            check.fail(where, f"port mappings need BRIDGE or USER networking, not {network}")
        container["portMappings"] = _port_mappings(check, where, chosen, network)
    if raw.get("volumes") is not None:
        container["volumes"] = _volumes(check, f"{path}/volumes", raw["volumes"])
    for name in raw:
        if name not in ("type", "docker", "portMappings", "volumes"):
            check.fail(f"{path}/{name}", "is not a field of a container")
    return container


def _docker(check: _Checker, path: str, docker: dict) -> tuple[dict, str]:
    result: dict[str, Any] = {
        "image": check.string(f"{path}/image", docker.get("image"), allow_empty=False),
        "network": "HOST",
        "privileged": False,
        "parameters": [],
        "forcePullImage": False,
    }
    if docker.get("network") is not None:
        result["network"] = check.choice(f"{path}/network", docker["network"], DOCKER_NETWORKS) or "HOST"
    for flag in ("privileged", "forcePullImage"):
        if docker.get(flag) is not None:
            result[flag] = check.boolean(f"{path}/{flag}", docker[flag])
    parameters = docker.get("parameters")
    if parameters is not None and check.array(f"{path}/parameters", parameters) is not None:
        for where, parameter in check.objects_in(f"{path}/parameters", parameters):
            check.string(f"{where}/key", parameter.get("key"), allow_empty=False)
            check.string(f"{where}/value", parameter.get("value"))
        result["parameters"] = parameters
    if docker.get("credential") is not None:
        result["credential"] = check.object(f"{path}/credential", docker["credential"])
    for name in docker:
        if name not in result and name != "portMappings":
            check.fail(f"{path}/{name}", "is not a field of container.docker")
    return result, result["network"]


def _volumes(check: _Checker, path: str, value: Any) -> list:
    items = check.array(path, value) or []
    for where, volume in check.objects_in(path, items):
        check.string(f"{where}/containerPath", volume.get("containerPath"), allow_empty=False)
        if volume.get("hostPath") is not None:
            check.string(f"{where}/hostPath", volume["hostPath"], allow_empty=False)
        check.choice(f"{where}/mode", volume.get("mode", "RW"), ("RO", "RW"))
    return items


READINESS_CHECK_DEFAULTS: dict[str, Any] = {
    "name": "readinessCheck",
    "protocol": "HTTP",
    "path": "/",
    "portName": "http-api",
    "intervalSeconds": 30,
    "timeoutSeconds": 10,
    "httpStatusCodesForReady": [200],
    "preserveLastResponse": False,
}


def _readiness_checks(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    """Marathon's fields with its defaults; `portName` is checked against the app's ports in `_cross_check`."""
    items = check.array(path, value)
    if items is None:
        return None
    result = []
    for where, raw in check.objects_in(path, items):
        readiness: dict[str, Any] = copy.deepcopy(READINESS_CHECK_DEFAULTS)
        for name in ("name", "path", "portName"):
            if raw.get(name) is not None and check.string(f"{where}/{name}", raw[name], allow_empty=False):
                readiness[name] = raw[name]
        if raw.get("path") is not None and isinstance(raw["path"], str) and not raw["path"].startswith("/"):
            check.fail(f"{where}/path", "must start with /")
        if raw.get("protocol") is not None:
            readiness["protocol"] = check.choice(f"{where}/protocol", raw["protocol"], ("HTTP", "HTTPS")) or "HTTP"
        readiness.update(check.given_numbers(where, raw, {"intervalSeconds": 1, "timeoutSeconds": 1}, integer=True))
        if readiness["timeoutSeconds"] >= readiness["intervalSeconds"]:
            check.fail(f"{where}/timeoutSeconds", "must be smaller than intervalSeconds")
        codes = raw.get("httpStatusCodesForReady")
        if codes is not None and check.array(f"{where}/httpStatusCodesForReady", codes) is not None:
            if not codes:
                check.fail(f"{where}/httpStatusCodesForReady", "must not be empty")
            valid = [
                check.number(f"{where}/httpStatusCodesForReady({index})", code, 100, 599, integer=True)
                for index, code in enumerate(codes)
            ]
            if codes and None not in valid:
                readiness["httpStatusCodesForReady"] = valid
        if raw.get("preserveLastResponse") is not None:
            preserve = check.boolean(f"{where}/preserveLastResponse", raw["preserveLastResponse"])
            readiness["preserveLastResponse"] = bool(preserve)
        for name in raw:
            if name not in READINESS_CHECK_DEFAULTS:
                check.fail(f"{where}/{name}", "is not a field of a readiness check")
        result.append(readiness)
    return result


def _residency(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    residency = check.object(path, value)
    if residency is None:
        return None
    check.given_numbers(path, residency, {"relaunchEscalationTimeoutSeconds": 0}, integer=True)
    if residency.get("taskLostBehavior") is not None:
        check.choice(
            f"{path}/taskLostBehavior", residency["taskLostBehavior"], ("WAIT_FOREVER", "RELAUNCH_AFTER_TIMEOUT")
        )
    return residency


def _out_of_range_numbers(value: Any) -> Iterator[tuple[str, Any]]:
    """(path, number) of every number in `value` that is not finite or beyond `MAX_ANY_NUMBER` (no recursion)."""
    pending: list[tuple[str, Any]] = [("", value)]
    while pending:
        path, current = pending.pop()
        if isinstance(current, Mapping):
            pending.extend((f"{path}/{_clipped(str(key))}", item) for key, item in current.items())
        elif isinstance(current, list):
            pending.extend((f"{path}({index})", item) for index, item in enumerate(current))
        elif (
            isinstance(current, int | float)
            and not isinstance(current, bool)
            and (not math.isfinite(current) or abs(current) > MAX_ANY_NUMBER)
        ):
            yield path or "/", current


def _networks(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    items = check.array(path, value)
    if items is None:
        return None
    for where, network in check.objects_in(path, items):
        check.choice(f"{where}/mode", network.get("mode", "container"), ("host", "container/bridge", "container"))
    return items


def _accepted_roles(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    roles = check.string_list(path, value)
    if roles is not None and not roles:
        check.fail(path, "must name at least one role, or be left out")
    return roles


def _secrets(check: _Checker, path: str, value: Any, _parent: str) -> Any:
    secrets = check.object(path, value)
    for name, secret in (secrets or {}).items():
        if check.object(f"{path}/{name}", secret) is not None:
            check.string(f"{path}/{name}/source", secret.get("source"), allow_empty=False)
    return secrets


_FIELD_NORMALIZERS: dict[str, Callable[[_Checker, str, Any, str], Any]] = {
    "cmd": _cmd,
    "args": _args,
    "user": _string,
    "env": _env,
    "instances": _non_negative(integer=True),
    "cpus": _non_negative(maximum=MAX_SCALAR_RESOURCE),
    "mem": _non_negative(maximum=MAX_SCALAR_RESOURCE),
    "disk": _non_negative(maximum=MAX_SCALAR_RESOURCE),
    "gpus": _non_negative(integer=True),
    "executor": _string,
    "constraints": _constraints,
    "uris": _string_list,
    "fetch": _fetch,
    "storeUrls": _string_list,
    "backoffSeconds": _non_negative(),
    "backoffFactor": _non_negative(minimum=1.0, maximum=MAX_BACKOFF_FACTOR),
    "maxLaunchDelaySeconds": _non_negative(),
    "container": _container,
    "healthChecks": _health_checks,
    "readinessChecks": _readiness_checks,
    "dependencies": _dependencies,
    "upgradeStrategy": _upgrade_strategy,
    "labels": _labels,
    "acceptedResourceRoles": _accepted_roles,
    "ipAddress": _object,
    "residency": _residency,
    "secrets": _secrets,
    "taskKillGracePeriodSeconds": _non_negative(minimum=0),
    "unreachableStrategy": _unreachable_strategy,
    "killSelection": _kill_selection,
    "requirePorts": _boolean,
    "networks": _networks,
    "role": _string,
}
_NULLABLE_FIELDS = frozenset(
    {
        "cmd",
        "args",
        "user",
        "container",
        "ipAddress",
        "residency",
        "taskKillGracePeriodSeconds",
        "acceptedResourceRoles",
    }
)


def _normalize_ports(check: _Checker, raw: Mapping, app: dict) -> None:
    """portDefinitions from `portDefinitions` or the legacy `ports`; none for bridge/user networking."""
    definitions = raw.get("portDefinitions")
    ports = raw.get("ports")
    if isinstance(definitions, list) and ports is not None:
        legacy = check.array("/ports", ports)
        if legacy is not None and [d.get("port") for d in definitions if isinstance(d, Mapping)] != legacy:
            check.fail("/ports", "give either ports or portDefinitions, not both")
    if definitions is None and ports is not None:
        legacy = check.array("/ports", ports)
        if legacy is not None:
            definitions = [{"port": port} for port in legacy]
    if definitions is not None:
        app["portDefinitions"] = _port_definitions(check, "/portDefinitions", definitions, ROOT)
    if network_of(app) in ("BRIDGE", "USER"):
        if app["portDefinitions"]:
            check.fail("/portDefinitions", "are not allowed with BRIDGE or USER networking; use portMappings")
        app["portDefinitions"] = []
        if app["container"] is not None:
            app["container"].setdefault("portMappings", [])
    elif app["portDefinitions"] is None:
        # Marathon gives every host-networked app one port unless told otherwise.
        app["portDefinitions"] = [{"port": 0, "protocol": "tcp", "labels": {}}]
    if app["requirePorts"] and any(d["port"] == 0 for d in app["portDefinitions"] or []):
        check.fail("/requirePorts", "requirePorts needs every port of portDefinitions to be non-zero")


# -- updates ---------------------------------------------------------------------------------------


def merge_update(current: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """The raw app after a partial update (PUT/PATCH): top-level fields of `update` replace those of `current`."""
    merged = copy.deepcopy(dict(current))
    for name in READ_ONLY_FIELDS | {"version"}:
        merged.pop(name, None)
    if "ports" in update or "portDefinitions" in update:
        merged.pop("portDefinitions", None)
        merged.pop("ports", None)
    if "container" in update:
        merged.pop("portDefinitions", None)
    if "cmd" in update and update["cmd"] is not None:
        merged.pop("args", None)
    if "args" in update and update["args"] is not None:
        merged.pop("cmd", None)
    for name, value in update.items():
        if name in READ_ONLY_FIELDS or name == "version":
            continue
        merged[name] = copy.deepcopy(value)
    return merged


def strip_for_storage(app: Mapping[str, Any]) -> dict[str, Any]:
    """The app without anything computed at read time (tasks, counts, deployments)."""
    return {name: value for name, value in app.items() if name not in READ_ONLY_FIELDS or name == "versionInfo"}
