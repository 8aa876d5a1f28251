"""What the master accepts: every v1 call checked field by field as protobuf would parse it, and the rules
Mesos's `master/validation.cpp` applies to calls, frameworks, task ids and tasks.

Two kinds of refusal, as in Mesos. A call that is not a well-formed message (a field of the wrong type, an
unknown call type, a required field missing) is refused whole with `CallError` (HTTP 400), naming the field
path, e.g. `accept.operations[0].launch.task_infos[1].container: expected an object`; nothing of it takes
effect. A well-formed task that cannot run (its id, its resources, the offer) fails alone with TASK_ERROR:
`task_problem` says why.

The shapes below follow Mesos's v1 protobufs (`mesos/v1/mesos.proto`, `scheduler/scheduler.proto`) as stout's
JSON parser reads them: unknown fields are ignored, `null` is an unset field, integers may be sent as decimal
strings, bytes are base64.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesolite.master.allocator import DEFAULT_REFUSE_SECONDS
from mesolite.master.frameworks import framework_roles
from mesolite.protocol.v1 import value_of
from mesolite.resources import ResourceError, Resources

# Mesos's `validateID`: ids become file names on agents (sandbox directories), so NAME_MAX bytes at most.
MAX_ID_BYTES = 255
SCHEDULER_CALLS = (
    "SUBSCRIBE",
    "TEARDOWN",
    "ACCEPT",
    "DECLINE",
    "ACCEPT_INVERSE_OFFERS",
    "DECLINE_INVERSE_OFFERS",
    "REVIVE",
    "KILL",
    "SHUTDOWN",
    "ACKNOWLEDGE",
    "ACKNOWLEDGE_OPERATION_STATUS",
    "RECONCILE",
    "RECONCILE_OPERATIONS",
    "MESSAGE",
    "REQUEST",
    "SUPPRESS",
    "UPDATE_FRAMEWORK",
)
# Calls whose body Mesos requires (`scheduler::call::validate`).
CALLS_WITH_REQUIRED_BODY = frozenset(
    {
        "SUBSCRIBE",
        "ACCEPT",
        "DECLINE",
        "ACCEPT_INVERSE_OFFERS",
        "DECLINE_INVERSE_OFFERS",
        "KILL",
        "SHUTDOWN",
        "ACKNOWLEDGE",
        "ACKNOWLEDGE_OPERATION_STATUS",
        "RECONCILE_OPERATIONS",
        "MESSAGE",
        "REQUEST",
        "UPDATE_FRAMEWORK",
    }
)
LAUNCH_OPERATIONS = ("LAUNCH", "LAUNCH_GROUP")
AGENT_CALLS = ("STATUS_UPDATE", "STATUS_UPDATES", "PONG", "UNREGISTER")
AGENT_SUBSCRIPTIONS = ("REGISTER", "REREGISTER")
_INTEGER_TEXT = re.compile(r"-?[0-9]{1,20}")


class CallError(Exception):
    """A request the master refuses: `status` is the HTTP status the handler answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


# ------------------------------------------------------------------------------- message shapes


@dataclass(frozen=True)
class Scalar:
    """A protobuf scalar field: `string`, `bool`, `double`, `bytes`, or an integer type with its range."""

    kind: str
    low: int = 0
    high: int = 0


@dataclass(frozen=True)
class Enum:
    """An enum field. `values` None: any name is taken (Mesos adds values, e.g. capabilities, that an older
    master need not know); otherwise only these names (the master acts on the value)."""

    values: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Repeated:
    item: Any


@dataclass(frozen=True)
class MapOf:
    """A protobuf `map<string, V>`: a JSON object whose values are V."""

    value: Any


@dataclass
class Message:
    name: str
    fields: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()


STRING = Scalar("string")
BOOL = Scalar("bool")
DOUBLE = Scalar("double")
BYTES = Scalar("bytes")
INT32 = Scalar("integer", -(2**31), 2**31 - 1)
UINT32 = Scalar("integer", 0, 2**32 - 1)
INT64 = Scalar("integer", -(2**63), 2**63 - 1)
UINT64 = Scalar("integer", 0, 2**64 - 1)
ANY_ENUM = Enum()
# A message the master passes along without reading (the agent or the executor does): an object, at least.
OPAQUE = Message("opaque")


def _message(message_name: str, required: tuple[str, ...] = (), /, **fields: Any) -> Message:
    return Message(message_name, fields, required)


ID = _message("ID", ("value",), value=STRING)
LABELS = _message("Labels", labels=Repeated(_message("Label", ("key",), key=STRING, value=STRING)))
PARAMETER = _message("Parameter", ("key", "value"), key=STRING, value=STRING)
DURATION = _message("DurationInfo", ("nanoseconds",), nanoseconds=INT64)
KILL_POLICY = _message("KillPolicy", grace_period=DURATION)
RESOURCE = _message(
    "Resource",
    ("name",),
    name=STRING,
    type=Enum(("SCALAR", "RANGES", "SET")),
    scalar=_message("Value.Scalar", ("value",), value=DOUBLE),
    ranges=_message(
        "Value.Ranges", range=Repeated(_message("Value.Range", ("begin", "end"), begin=UINT64, end=UINT64))
    ),
    set=_message("Value.Set", item=Repeated(STRING)),
    role=STRING,
    allocation_info=_message("AllocationInfo", role=STRING),
    reservation=_message("ReservationInfo", principal=STRING, labels=LABELS, role=STRING),
    reservations=Repeated(_message("ReservationInfo", type=ANY_ENUM, role=STRING, principal=STRING, labels=LABELS)),
    disk=OPAQUE,
    revocable=OPAQUE,
    shared=OPAQUE,
    provider_id=ID,
)
RESOURCES = Repeated(RESOURCE)
URI = _message(
    "CommandInfo.URI", ("value",), value=STRING, executable=BOOL, extract=BOOL, cache=BOOL, output_file=STRING
)
ENVIRONMENT = _message(
    "Environment",
    variables=Repeated(
        _message("Environment.Variable", ("name",), name=STRING, type=ANY_ENUM, value=STRING, secret=OPAQUE)
    ),
)
COMMAND = _message(
    "CommandInfo",
    uris=Repeated(URI),
    environment=ENVIRONMENT,
    shell=BOOL,
    value=STRING,
    arguments=Repeated(STRING),
    user=STRING,
)
PORT_MAPPING = _message(
    "PortMapping", ("host_port", "container_port"), host_port=UINT32, container_port=UINT32, protocol=STRING
)
IMAGE = _message(
    "Image",
    type=Enum(("APPC", "DOCKER")),
    appc=OPAQUE,
    docker=_message("Image.Docker", ("name",), name=STRING, credential=OPAQUE, config=OPAQUE),
    cached=BOOL,
)
VOLUME = _message(
    "Volume",
    ("container_path",),
    mode=Enum(("RW", "RO")),
    container_path=STRING,
    host_path=STRING,
    image=IMAGE,
    source=OPAQUE,
)
CONTAINER = _message(
    "ContainerInfo",
    type=Enum(("DOCKER", "MESOS")),
    volumes=Repeated(VOLUME),
    hostname=STRING,
    docker=_message(
        "ContainerInfo.DockerInfo",
        ("image",),
        image=STRING,
        network=Enum(("HOST", "BRIDGE", "NONE", "USER")),
        port_mappings=Repeated(PORT_MAPPING),
        privileged=BOOL,
        parameters=Repeated(PARAMETER),
        force_pull_image=BOOL,
        volume_driver=STRING,
    ),
    mesos=_message("ContainerInfo.MesosInfo", image=IMAGE),
    network_infos=Repeated(
        _message(
            "NetworkInfo",
            ip_addresses=Repeated(_message("NetworkInfo.IPAddress", protocol=ANY_ENUM, ip_address=STRING)),
            name=STRING,
            groups=Repeated(STRING),
            labels=LABELS,
            port_mappings=Repeated(PORT_MAPPING),
        )
    ),
    linux_info=OPAQUE,
    rlimit_info=OPAQUE,
    tty_info=OPAQUE,
)
HEALTH_CHECK = _message(
    "HealthCheck",
    delay_seconds=DOUBLE,
    interval_seconds=DOUBLE,
    timeout_seconds=DOUBLE,
    consecutive_failures=UINT32,
    grace_period_seconds=DOUBLE,
    type=ANY_ENUM,
    command=COMMAND,
    http=_message(
        "HealthCheck.HTTPCheckInfo",
        scheme=STRING,
        port=UINT32,
        path=STRING,
        statuses=Repeated(UINT32),
        protocol=ANY_ENUM,
    ),
    tcp=_message("HealthCheck.TCPCheckInfo", port=UINT32, protocol=ANY_ENUM),
)
CHECK = _message(
    "CheckInfo",
    type=ANY_ENUM,
    command=_message("CheckInfo.Command", command=COMMAND),
    http=_message("CheckInfo.Http", port=UINT32, path=STRING, protocol=ANY_ENUM),
    tcp=_message("CheckInfo.Tcp", port=UINT32, protocol=ANY_ENUM),
    delay_seconds=DOUBLE,
    interval_seconds=DOUBLE,
    timeout_seconds=DOUBLE,
)
DISCOVERY = _message(
    "DiscoveryInfo",
    visibility=ANY_ENUM,
    name=STRING,
    environment=STRING,
    location=STRING,
    version=STRING,
    ports=_message(
        "Ports",
        ports=Repeated(
            _message(
                "Port", ("number",), number=UINT32, name=STRING, protocol=STRING, visibility=ANY_ENUM, labels=LABELS
            )
        ),
    ),
    labels=LABELS,
)
EXECUTOR = _message(
    "ExecutorInfo",
    ("executor_id",),
    type=Enum(("UNKNOWN", "DEFAULT", "CUSTOM")),
    executor_id=ID,
    framework_id=ID,
    command=COMMAND,
    container=CONTAINER,
    resources=RESOURCES,
    name=STRING,
    source=STRING,
    data=BYTES,
    discovery=DISCOVERY,
    shutdown_grace_period=DURATION,
    labels=LABELS,
)
TASK = _message(
    "TaskInfo",
    ("name", "task_id", "agent_id"),
    name=STRING,
    task_id=ID,
    agent_id=ID,
    resources=RESOURCES,
    limits=MapOf(_message("Value.Scalar", ("value",), value=DOUBLE)),
    executor=EXECUTOR,
    command=COMMAND,
    container=CONTAINER,
    health_check=HEALTH_CHECK,
    check=CHECK,
    kill_policy=KILL_POLICY,
    data=BYTES,
    labels=LABELS,
    discovery=DISCOVERY,
    max_completion_time=DURATION,
)
OPERATION = _message(
    "Offer.Operation",
    ("type",),
    type=Enum(
        (
            "UNKNOWN",
            "LAUNCH",
            "LAUNCH_GROUP",
            "RESERVE",
            "UNRESERVE",
            "CREATE",
            "DESTROY",
            "GROW_VOLUME",
            "SHRINK_VOLUME",
            "CREATE_DISK",
            "DESTROY_DISK",
        )
    ),
    id=ID,
    launch=_message("Offer.Operation.Launch", task_infos=Repeated(TASK)),
    launch_group=_message(
        "Offer.Operation.LaunchGroup",
        ("executor", "task_group"),
        executor=EXECUTOR,
        task_group=_message("TaskGroupInfo", tasks=Repeated(TASK)),
    ),
    reserve=OPAQUE,
    unreserve=OPAQUE,
    create=OPAQUE,
    destroy=OPAQUE,
    grow_volume=OPAQUE,
    shrink_volume=OPAQUE,
    create_disk=OPAQUE,
    destroy_disk=OPAQUE,
)
FILTERS = _message("Filters", refuse_seconds=DOUBLE)
FRAMEWORK_INFO = _message(
    "FrameworkInfo",
    ("user", "name"),
    user=STRING,
    name=STRING,
    id=ID,
    failover_timeout=DOUBLE,
    checkpoint=BOOL,
    role=STRING,
    roles=Repeated(STRING),
    hostname=STRING,
    principal=STRING,
    webui_url=STRING,
    capabilities=Repeated(_message("FrameworkInfo.Capability", type=ANY_ENUM)),
    labels=LABELS,
    offer_filters=MapOf(OPAQUE),
)
ROLES = {"role": STRING, "roles": Repeated(STRING)}
CALL = _message(
    "Call",
    ("type",),
    framework_id=ID,
    type=Enum(SCHEDULER_CALLS),
    subscribe=_message(
        "Call.Subscribe",
        ("framework_info",),
        framework_info=FRAMEWORK_INFO,
        suppressed_roles=Repeated(STRING),
        offer_constraints=OPAQUE,
    ),
    accept=_message("Call.Accept", offer_ids=Repeated(ID), operations=Repeated(OPERATION), filters=FILTERS),
    decline=_message("Call.Decline", offer_ids=Repeated(ID), filters=FILTERS),
    accept_inverse_offers=_message("Call.AcceptInverseOffers", inverse_offer_ids=Repeated(ID), filters=FILTERS),
    decline_inverse_offers=_message("Call.DeclineInverseOffers", inverse_offer_ids=Repeated(ID), filters=FILTERS),
    revive=_message("Call.Revive", **ROLES),
    suppress=_message("Call.Suppress", **ROLES),
    kill=_message("Call.Kill", ("task_id",), task_id=ID, agent_id=ID, kill_policy=KILL_POLICY),
    shutdown=_message("Call.Shutdown", ("executor_id", "agent_id"), executor_id=ID, agent_id=ID),
    acknowledge=_message("Call.Acknowledge", ("agent_id", "task_id", "uuid"), agent_id=ID, task_id=ID, uuid=BYTES),
    acknowledge_operation_status=OPAQUE,
    reconcile=_message(
        "Call.Reconcile", tasks=Repeated(_message("Call.Reconcile.Task", ("task_id",), task_id=ID, agent_id=ID))
    ),
    reconcile_operations=OPAQUE,
    message=_message("Call.Message", ("agent_id", "executor_id", "data"), agent_id=ID, executor_id=ID, data=BYTES),
    request=_message("Call.Request", requests=Repeated(_message("Request", agent_id=ID, resources=RESOURCES))),
    update_framework=_message(
        "Call.UpdateFramework", ("framework_info",), framework_info=FRAMEWORK_INFO, suppressed_roles=Repeated(STRING)
    ),
)

# The master<->agent protocol (docs/architecture.md): what the master reads of it.
TASK_STATUS = _message(
    "TaskStatus",
    ("task_id", "state"),
    task_id=ID,
    state=STRING,
    message=STRING,
    source=ANY_ENUM,
    reason=ANY_ENUM,
    data=BYTES,
    agent_id=ID,
    executor_id=ID,
    timestamp=DOUBLE,
    uuid=BYTES,
    healthy=BOOL,
    labels=LABELS,
)
STATUS_UPDATE = _message(
    "StatusUpdate", ("status",), framework_id=ID, status=TASK_STATUS, latest_state=STRING, uuid=BYTES
)
AGENT_CALL = _message(
    "AgentCall",
    ("type",),
    type=Enum(AGENT_CALLS),
    status_update=STATUS_UPDATE,
    status_updates=Repeated(STATUS_UPDATE),
)
AGENT_INFO = _message(
    "AgentInfo",
    ("hostname",),
    hostname=STRING,
    port=INT32,
    ip=STRING,
    id=ID,
    resources=RESOURCES,
    attributes=Repeated(OPAQUE),
    domain=OPAQUE,
)
AGENT_SUBSCRIPTION = _message(
    "AgentSubscription",
    ("type", "agent_info"),
    type=Enum(AGENT_SUBSCRIPTIONS),
    agent_info=AGENT_INFO,
    version=STRING,
    boot_id=STRING,
    tasks=Repeated(_message("Task", framework_id=ID, task_id=ID, executor_id=ID, resources=RESOURCES, role=STRING)),
    frameworks=Repeated(_message("FrameworkInfo", id=ID)),
)


def check_message(value: Any, shape: Message, path: str) -> None:
    """Raise `CallError` naming the first field of `value` that does not parse as `shape`."""
    if not isinstance(value, Mapping):
        raise CallError(f"{path}: expected an object, got {_json_type(value)}")
    for name, item in value.items():
        kind = shape.fields.get(name)
        if kind is None or item is None:
            continue  # unknown fields are ignored, null is unset (stout's parser does the same)
        _check(item, kind, _join(path, name))
    for name in shape.required:
        if value.get(name) is None:
            raise CallError(f"{_join(path, name)}: required field missing")


def _check(value: Any, kind: Any, path: str) -> None:
    if isinstance(kind, Message):
        check_message(value, kind, path)
    elif isinstance(kind, Repeated):
        if not isinstance(value, list):
            raise CallError(f"{path}: expected an array, got {_json_type(value)}")
        for index, item in enumerate(value):
            _check(item, kind.item, f"{path}[{index}]")
    elif isinstance(kind, MapOf):
        if not isinstance(value, Mapping):
            raise CallError(f"{path}: expected an object, got {_json_type(value)}")
        for key, item in value.items():
            _check(item, kind.value, f"{path}.{key}")
    elif isinstance(kind, Enum):
        if not isinstance(value, str):
            raise CallError(f"{path}: expected an enum name (a string), got {_json_type(value)}")
        if kind.values is not None and value not in kind.values:
            raise CallError(f"{path}: unknown value {value!r}, expected one of {', '.join(kind.values)}")
    else:
        _check_scalar(value, kind, path)


def _check_scalar(value: Any, kind: Scalar, path: str) -> None:
    if kind.kind == "string":
        if not isinstance(value, str):
            raise CallError(f"{path}: expected a string, got {_json_type(value)}")
    elif kind.kind == "bool":
        if not isinstance(value, bool):
            raise CallError(f"{path}: expected a boolean, got {_json_type(value)}")
    elif kind.kind == "double":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise CallError(f"{path}: expected a number, got {_json_type(value)}")
    elif kind.kind == "bytes":
        if not isinstance(value, str):
            raise CallError(f"{path}: expected base64 bytes (a string), got {_json_type(value)}")
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise CallError(f"{path}: '{value[:64]}' is not base64") from None
    else:
        number = _integer(value)
        if number is None:
            raise CallError(f"{path}: expected an integer, got {_json_type(value)}")
        if not kind.low <= number <= kind.high:
            raise CallError(f"{path}: {number} is out of range [{kind.low}, {kind.high}]")


def _integer(value: Any) -> int | None:
    """An integer field's value: a JSON integer, an integral number, or a decimal string (protobuf's JSON)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value):
        return int(value)
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


# ------------------------------------------------------------------------------- scheduler calls


def validate_call(call: Any) -> str:
    """Check a v1 scheduler `Call` as a whole; its type. `CallError` (400) names the first bad field."""
    if not isinstance(call, Mapping):
        raise CallError(f"Expecting a JSON object (a v1 Call), got {_json_type(call)}")
    kind = call.get("type")
    if kind is None:
        raise CallError("Expecting 'type' to be present")
    if not isinstance(kind, str) or kind not in SCHEDULER_CALLS:
        shown = kind if isinstance(kind, str) else _json_type(kind)
        raise CallError(f"Unknown call type {shown!r}: expected one of {', '.join(sorted(SCHEDULER_CALLS))}")
    check_message(call, CALL, "")
    body_name = kind.lower()
    if kind in CALLS_WITH_REQUIRED_BODY and call.get(body_name) is None:
        raise CallError(f"Expecting '{body_name}' to be present")
    if kind != "SUBSCRIBE" and call.get("framework_id") is None:
        raise CallError("Expecting 'framework_id' to be present")
    if kind == "ACCEPT":
        _validate_operations(call["accept"].get("operations") or [])
    return kind


def _validate_operations(operations: list) -> None:
    for index, operation in enumerate(operations):
        kind = operation["type"]
        if kind not in LAUNCH_OPERATIONS:
            raise CallError(f"accept.operations[{index}].type {kind!r} is not supported (LAUNCH and LAUNCH_GROUP are)")
        body = operation.get(kind.lower())
        if kind == "LAUNCH_GROUP" and body is None:
            raise CallError(f"accept.operations[{index}].launch_group: required field missing")


def validate_subscribe(call: Mapping) -> tuple[dict, str | None]:
    """A SUBSCRIBE's FrameworkInfo and framework id (None for a new framework), after Mesos's framework rules."""
    check_message(call, CALL, "")
    subscribe = call.get("subscribe")
    if not isinstance(subscribe, Mapping):
        raise CallError("Expecting 'subscribe' to be present")
    info = subscribe["framework_info"]
    framework_id = value_of(call, "framework_id")
    info_id = value_of(info, "id")
    if framework_id and info_id and framework_id != info_id:
        raise CallError("'framework_id' differs from 'subscribe.framework_info.id'")
    for given in (framework_id, info_id):
        if given is not None:
            problem = id_problem(given)
            if problem:
                raise CallError(f"Invalid framework id: {problem}")
    capabilities = info.get("capabilities") or []
    roles = framework_roles(info)
    for role in roles:
        if not isinstance(role, str) or not role or role in (".", "..") or any(ch.isspace() for ch in role):
            raise CallError(f"Invalid role '{role}' in subscribe.framework_info")
    if info.get("roles") and "MULTI_ROLE" not in {c.get("type") for c in capabilities}:
        raise CallError("'subscribe.framework_info.roles' needs the MULTI_ROLE capability; use 'role' otherwise")
    timeout = info.get("failover_timeout", 0.0)
    if timeout is not None and timeout < 0:
        raise CallError("subscribe.framework_info.failover_timeout must be a non-negative number of seconds")
    return dict(info), framework_id or info_id


def id_list(items: object, where: str) -> list[str]:
    """The values of a repeated id field (`offer_ids`)."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise CallError(f'{where}: expected an array of {{"value": ...}} objects')
    values = []
    for index, item in enumerate(items):
        value = value_of(item)
        if value is None:
            raise CallError(f"{where}[{index}]: expected an object with a string 'value'")
        values.append(value)
    return values


def refuse_seconds(filters: object, where: str) -> float:
    """`Filters.refuse_seconds`, defaulted as Mesos does."""
    if filters is None:
        return DEFAULT_REFUSE_SECONDS
    if not isinstance(filters, Mapping):
        raise CallError(f"{where}: expected an object")
    value = filters.get("refuse_seconds", DEFAULT_REFUSE_SECONDS)
    if value is None:
        return DEFAULT_REFUSE_SECONDS
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise CallError(f"{where}.refuse_seconds: expected a number")
    return float(value)


def requested_roles(body: Mapping | None, subscribed: tuple[str, ...]) -> list[str] | None:
    """The roles a REVIVE or SUPPRESS names (None: all of the framework's)."""
    if not body:
        return None
    roles = body.get("roles")
    if roles is None and isinstance(body.get("role"), str):
        roles = [body["role"]]
    if roles is None:
        return None
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise CallError("'roles' must be a list of strings")
    unknown = [role for role in roles if role not in subscribed]
    if unknown:
        raise CallError(f"Framework is not subscribed to role(s) {', '.join(unknown)}")
    return roles


def launched_tasks(operations: list) -> list[dict]:
    """Every TaskInfo an ACCEPT's operations would launch."""
    tasks: list = []
    for operation in operations:
        if not isinstance(operation, Mapping):
            continue
        if operation.get("type") == "LAUNCH":
            tasks += (operation.get("launch") or {}).get("task_infos") or []
        elif operation.get("type") == "LAUNCH_GROUP":
            tasks += ((operation.get("launch_group") or {}).get("task_group") or {}).get("tasks") or []
    return [task for task in tasks if isinstance(task, Mapping)]


# ------------------------------------------------------------------------------- the agent protocol


def validate_agent_call(call: Any) -> str:
    """Check a call on /internal/agent/call; its type."""
    if not isinstance(call, Mapping):
        raise CallError(f"Expecting a JSON object (an agent call), got {_json_type(call)}")
    kind = call.get("type")
    if not isinstance(kind, str) or kind not in AGENT_CALLS:
        shown = kind if isinstance(kind, str) else _json_type(kind)
        raise CallError(f"Unknown agent call type {shown!r} ({', '.join(AGENT_CALLS)})")
    check_message(call, AGENT_CALL, "")
    return kind


def validate_agent_subscription(body: Any) -> None:
    """Check a REGISTER or REREGISTER on /internal/agent/subscribe."""
    if not isinstance(body, Mapping):
        raise CallError(f"Expecting a JSON object (an agent subscription), got {_json_type(body)}")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in AGENT_SUBSCRIPTIONS:
        raise CallError("'type' must be REGISTER or REREGISTER")
    check_message(body, AGENT_SUBSCRIPTION, "")


# ------------------------------------------------------------------------------- tasks


def id_problem(value: str) -> str | None:
    """Mesos's `common::validation::validateID`: why `value` cannot be an id (a task's, an executor's), or None.

    Ids name directories on agents: at most NAME_MAX (255) bytes, not `.` or `..`, no `/` or `\\`, no control
    characters. Whitespace is refused too (stricter than Mesos): ids travel unquoted through logs and pids.
    """
    if not value:
        return "ID must not be empty"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        return f"ID must not be greater than {MAX_ID_BYTES} characters"
    if value in (".", ".."):
        return f"'{value}' is disallowed"
    if any(ch in "/\\" or ch.isspace() or not ch.isprintable() for ch in value):
        return f"'{_shown(value)}' contains invalid characters ('/', '\\\\', whitespace or control characters)"
    return None


def _shown(value: str) -> str:
    return value.encode("unicode_escape").decode("ascii")[:80]


def task_resources(task_info: Mapping, available: Resources) -> tuple[Resources | None, str | None]:
    """What a TaskInfo (and its executor) needs of `available`, or why it cannot launch (Mesos's
    `validateResources` and `validateExecutor`: "Task uses no resources", more than available).

    A command task runs under an executor the agent generates; as in Mesos, its overhead is not part of the
    task's resources (the agent adds it to the container's limits)."""
    try:
        resources = Resources.from_protobuf_json(task_info.get("resources") or [])
        executor = task_info.get("executor")
        executor_resources = Resources.from_protobuf_json((executor or {}).get("resources") or [])
    except ResourceError as error:
        return None, f"Task uses invalid resources: {error}"
    if resources.is_empty():
        return None, "Task uses no resources"
    total = resources + executor_resources
    if not available.contains(total):
        return None, f"Task uses more resources {total} than available {available}"
    return total, None


def task_problem(task_info: Mapping, agent_id: str, known_task: bool) -> str | None:
    """Why a well-formed TaskInfo cannot launch on `agent_id` (TASK_ERROR), resources aside; None if it can."""
    task_id = value_of(task_info, "task_id") or ""
    problem = id_problem(task_id)
    if problem:
        return f"Task ID is invalid: {problem}"
    if known_task:
        return f"Task has duplicate ID: {task_id}"
    if value_of(task_info, "agent_id") != agent_id:
        return f"Task uses agent_id {value_of(task_info, 'agent_id')!r}, but the offer is for {agent_id}"
    has_command, has_executor = task_info.get("command") is not None, task_info.get("executor") is not None
    if has_command == has_executor:
        return "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present"
    executor_id = value_of(task_info.get("executor"), "executor_id")
    if executor_id is not None:
        problem = id_problem(executor_id)
        if problem:
            return f"Executor ID is invalid: {problem}"
    grace = ((task_info.get("kill_policy") or {}).get("grace_period") or {}).get("nanoseconds")
    if grace is not None and (_integer(grace) or 0) < 0:
        return "Task's 'kill_policy.grace_period' must be non-negative"
    return None
