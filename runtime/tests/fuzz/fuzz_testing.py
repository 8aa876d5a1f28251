"""What the fuzz tests share: hostile-value strategies, mutation of valid messages, raw HTTP, findings.

A mutated message starts from a valid template (a real call, a real app definition) and changes one to
three places in it: a value of the wrong type, a huge or negative number, an odd string, a deep nesting, a
dropped or an unknown key. Paths marked *protected* (what a real agent would run as a shell command) only
ever get non-string values, so that no fuzzed text is executed on this machine.

Every failure is appended to FINDINGS_FILE (one short entry: request, response, which property) so that
the people fixing the servers can replay it; only hypothesis's final, shrunk example is written.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import note
from hypothesis import strategies as st
from hypothesis.control import current_build_context

FINDINGS_FILE = Path(os.environ.get("MESOLITE_FUZZ_FINDINGS", "/tmp/fuzz-findings.md"))
REQUEST_TIMEOUT = 10.0  # a server that takes longer to answer one request is reported as hung
SHOWN_BYTES = 400  # how much of a request or response body a finding quotes

# ------------------------------------------------------------------------------------------- hostile values


class DeepNesting:
    """A placeholder for `depth` nested JSON arrays: json.dumps cannot write them (recursion limit), so
    `encode_json` splices them into the text."""

    def __init__(self, depth: int):
        self.depth = depth

    def __repr__(self) -> str:
        return f"DeepNesting({self.depth})"


ODD_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "../../../../etc/passwd",
    "/",
    "//",
    "..",
    "%00",
    "%2e%2e%2f",
    "\u202e\u0645\u0631\u062d\u0628\u0627",
    "\ud7ff\ue000\ufffe\uffff",
    "😀" * 10,
    "x" * 300,
    "x" * 70_000,
    "\n\r\t",
    "null",
    "{}",
    "[]",
    "NaN",
    "-1",
    "1e999",
    "*",
    "TASK_RUNNING",
]
HUGE_NUMBERS = [
    0,
    -1,
    -(2**63),
    2**63,
    2**64 + 1,
    10**30,
    10**400,
    1e300,
    -1e300,
    1e-300,
    0.1,
    -0.0,
]


def odd_strings() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(ODD_STRINGS),
        st.text(max_size=40),
        st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Cf", "Zs", "So", "Lo"]), max_size=20),
    )


def hostile_scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.sampled_from(HUGE_NUMBERS),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False, allow_infinity=False),
        odd_strings(),
    )


def hostile_values() -> st.SearchStrategy[Any]:
    """Any JSON value a careless or malicious client may send in place of the expected one."""
    containers = st.one_of(
        st.just([]),
        st.just({}),
        st.lists(hostile_scalars(), min_size=1, max_size=3),
        st.dictionaries(odd_strings(), hostile_scalars(), min_size=1, max_size=3),
        st.just({"value": 1}),
        st.just([{"value": None}]),
        st.builds(DeepNesting, st.sampled_from([100, 1_000, 10_000, 100_000])),
        st.lists(st.just({"name": "x"}), min_size=500, max_size=2_000),
    )
    return st.one_of(hostile_scalars(), containers)


def encode_json(message: Any) -> bytes:
    """JSON bytes of `message`, with every DeepNesting placeholder replaced by its nested arrays."""
    nestings: list[DeepNesting] = []

    def placeholder(value: Any) -> str:
        if isinstance(value, DeepNesting):
            nestings.append(value)
            return f"@@deep{len(nestings) - 1}@@"
        raise TypeError(f"not JSON: {value!r}")

    text = json.dumps(message, default=placeholder)
    for index, nesting in enumerate(nestings):
        text = text.replace(f'"@@deep{index}@@"', "[" * nesting.depth + "]" * nesting.depth)
    return text.encode("utf-8", errors="surrogatepass")


# ------------------------------------------------------------------------------------------- mutations

Path_ = tuple[Any, ...]


def paths_of(message: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every place in a JSON value (the root included), depth first."""
    found = [prefix]
    if isinstance(message, dict):
        for key, value in message.items():
            found += paths_of(value, (*prefix, key))
    elif isinstance(message, list):
        for index, value in enumerate(message):
            found += paths_of(value, (*prefix, index))
    return found


def _parent_and_key(message: Any, path: Path_) -> tuple[Any, Any]:
    parent = message
    for step in path[:-1]:
        parent = parent[step]
    return parent, path[-1]


def is_protected(path: Path_, protected: tuple[str, ...]) -> bool:
    return any(str(step) in protected for step in path)


def _copy(message: Any) -> Any:
    return json.loads(json.dumps(message))


@st.composite
def mutated(
    draw, template: Any, protected: tuple[str, ...] = (), swaps: dict[str, list] | None = None
) -> tuple[Any, str]:
    """`template` with one to three places changed (see the module's docstring), and where: the changed
    paths, list indexes left out (`accept.operations.launch`), which tells one failure from another.

    `swaps` maps a key to valid alternatives (e.g. the other call types), so that a well-formed body of one
    kind is sometimes sent under the name of another.
    """
    message = _copy(template)
    changed: set[str] = set()
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        places = [path for path in paths_of(message) if path]
        if not places:
            break
        path = draw(st.sampled_from(places))
        parent, key = _parent_and_key(message, path)
        changed.add(".".join(str(step) for step in path if not isinstance(step, int)) or "[]")
        how = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add_key", "wrap", "swap"]))
        if how == "swap" and swaps and str(key) in swaps:
            parent[key] = draw(st.sampled_from(swaps[str(key)]))
        elif how == "drop":
            del parent[key]
        elif how == "add_key" and isinstance(parent[key], dict):
            parent[key][draw(odd_strings())] = draw(hostile_scalars())
        elif how == "wrap":
            parent[key] = draw(st.sampled_from([[parent[key]], {"value": parent[key]}, [parent[key]] * 1000]))
        elif is_protected(path, protected):
            parent[key] = draw(st.one_of(st.none(), st.booleans(), st.sampled_from(HUGE_NUMBERS), st.just([1])))
        else:
            parent[key] = draw(hostile_values())
    return message, " ".join(sorted(changed))


def truncated(body: bytes) -> st.SearchStrategy[bytes]:
    # A fraction of the body rather than a byte count: the drawn value must not depend on the body's length
    # (ids of the moment), or hypothesis could not replay an example.
    return st.integers(min_value=0, max_value=999).map(lambda per_mille: body[: len(body) * per_mille // 1000])


def raw_bodies(valid: bytes) -> st.SearchStrategy[bytes]:
    """Bodies that are not (valid UTF-8) JSON, or barely: truncated, invalid bytes, huge numbers, NaN."""
    return st.one_of(
        truncated(valid),
        st.binary(max_size=200),
        st.just(valid.replace(b'"', b'"\xff\xfe', 1)),
        st.just(b"\xef\xbb\xbf" + valid),
        st.just(valid.replace(b'"', b"'")),
        st.just(b"[" * 10_000 + b"]" * 10_000),
        st.just(b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
        st.just(b"1" * 400),
        st.just(b'{"type": NaN}'),
        st.just(b'{"type": Infinity}'),
        st.just(b'{"type": "SUBSCRIBE", "type": "ACCEPT"}'),
        st.just(b"null"),
        st.just(b'"\\ud800"'),
        st.just(b""),
        st.just(valid + b"garbage"),
    )


ODD_CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/json; charset=x-no-such-charset",
    "application/json; charset=utf-16",
    "text/plain",
    "application/x-www-form-urlencoded",
    "",
]

# ------------------------------------------------------------------------------------------- raw HTTP


@dataclass
class Reply:
    status: int  # 0: no answer (connection refused, reset, or timed out)
    body: bytes
    error: str = ""

    def text(self, limit: int = SHOWN_BYTES) -> str:
        return shown(self.body, limit) if not self.error else f"<{self.error}>"

    def json(self) -> Any:
        return json.loads(self.body)


def shown(data: bytes | str, limit: int = SHOWN_BYTES) -> str:
    text = data.decode("utf-8", errors="backslashreplace") if isinstance(data, bytes) else data
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = REQUEST_TIMEOUT,
    stream: bool = False,
) -> Reply:
    """One HTTP request on its own connection; never raises. `stream`: read at most one chunk of the body
    (a SUBSCRIBE that succeeds answers with an endless stream)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        data = response.read1(4096) if stream and response.status == 200 else response.read()
        return Reply(response.status, data)
    except (OSError, http.client.HTTPException) as error:
        return Reply(0, b"", f"{type(error).__name__}: {error}")
    finally:
        connection.close()


def response_head(port: int, method: str, path: str, timeout: float = REQUEST_TIMEOUT) -> Reply:
    """The status of one request whose body is an endless stream (Marathon's /v2/events, which may stay silent
    for a while when filtered): only the status line and headers are read; never raises."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return Reply(response.status, b"" if response.status == 200 else response.read())
    except (OSError, http.client.HTTPException) as error:
        return Reply(0, b"", f"{type(error).__name__}: {error}")
    finally:
        connection.close()


def quote_path(text: str) -> str:
    return urllib.parse.quote(text, safe="/", errors="surrogatepass")


def answers_health(port: int, path: str = "/health", timeout: float = 5.0) -> bool:
    return request(port, "GET", path, timeout=timeout).status == 200


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """The first truthy value of `predicate` within `timeout`, or its last value."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


# ------------------------------------------------------------------------------------------- findings

_written: set[str] = set()
_findings_lock = threading.Lock()


class PropertyFailure(AssertionError):
    """A violated property. Subclasses are made per (server, property, request kind), so that hypothesis
    tells the failures apart, shrinks each one and reports them all rather than only the first."""


_failure_classes: dict[str, type[PropertyFailure]] = {}


def failure_class(key: str) -> type[PropertyFailure]:
    name = "".join(part.capitalize() for part in key.replace("/", " ").replace("-", " ").split() if part.isalnum())
    if key not in _failure_classes:
        _failure_classes[key] = type(f"{name or 'Property'}Failure", (PropertyFailure,), {})
    return _failure_classes[key]


def is_final_example() -> bool:
    with contextlib.suppress(Exception):
        return current_build_context().is_final
    return False


def fail(
    section: str, kind: str, prop: str, request_text: str, reply: Reply | None, detail: str = "", where: str = ""
) -> None:
    """Record a violated property (once hypothesis has shrunk it) and fail the example.

    Failures are told apart by section, property and `where` (what was mutated), not by the request's
    kind: one bad `type` breaks every call alike and makes one finding, not one per call type."""
    response = f"{reply.status} {reply.text()}" if reply is not None else "-"
    mutated_at = f"; mutated: {where}" if where else ""
    entry = f"- **{prop}** ({kind}{mutated_at})\n  - request: `{request_text}`\n  - response: `{response}`\n"
    if detail:
        entry += f"  - detail: {detail}\n"
    note(entry)
    if is_final_example():
        record_finding(section, entry)
    raise failure_class(f"{section} {prop} {where or kind}")(entry)


def record_finding(section: str, entry: str) -> None:
    """Append an entry under `## <section>` of FINDINGS_FILE (created with its three headings)."""
    key = f"{section}\n{entry}"
    with _findings_lock:
        if key in _written:
            return
        _written.add(key)
        text = FINDINGS_FILE.read_text() if FINDINGS_FILE.exists() else ""
        if not text:
            text = (
                "# Fuzz findings (runtime/tests/fuzz)\n\n"
                "Each entry: the violated property, the request (method path, headers, body; `\\xNN` = raw byte),\n"
                "the response. Replay with curl --data-binary or the fuzz test named in brackets.\n\n"
                "## master\n\n## marathon\n\n## agent files\n"
            )
        heading = f"## {section}\n"
        if heading not in text:
            text += f"\n{heading}"
        start = text.index(heading) + len(heading)
        following = text.find("\n## ", start)
        end = len(text) if following == -1 else following + 1
        stamped = entry.replace("\n", f" [{time.strftime('%H:%M:%S')} UTC]\n", 1)
        text = text[:end].rstrip("\n") + "\n" + stamped + ("\n" + text[end:] if following != -1 else "")
        FINDINGS_FILE.write_text(text)


# ------------------------------------------------------------------------------------------- invariants

SCALARS = ("cpus", "mem", "disk", "gpus")
EPSILON = 1e-6


def scalars(flat: dict | None) -> dict[str, float]:
    return {name: float((flat or {}).get(name) or 0.0) for name in SCALARS}


def add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {name: a.get(name, 0.0) + b.get(name, 0.0) for name in SCALARS}


def differs(a: dict[str, float], b: dict[str, float]) -> bool:
    return any(abs(a.get(name, 0.0) - b.get(name, 0.0)) > EPSILON for name in SCALARS)


@dataclass
class AgentAccount:
    """One agent's resources as /master/state tells them, recomputed from the offers and tasks it lists."""

    agent_id: str
    total: dict[str, float]
    offered: dict[str, float]  # the agent's own `offered_resources`
    used: dict[str, float]  # the agent's own `used_resources`
    held_offers: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SCALARS, 0.0))
    live_tasks: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SCALARS, 0.0))

    @property
    def idle(self) -> dict[str, float]:
        return {name: self.total[name] - self.offered[name] - self.used[name] for name in SCALARS}


def accounts(state: dict) -> dict[str, AgentAccount]:
    """Per agent of /master/state: total, offered, used, and the same from the frameworks' offers and tasks."""
    found = {
        agent["id"]: AgentAccount(
            agent["id"],
            scalars(agent.get("resources")),
            scalars(agent.get("offered_resources")),
            scalars(agent.get("used_resources")),
        )
        for agent in state.get("slaves", [])
    }
    for framework in state.get("frameworks", []):
        for offer in framework.get("offers", []):
            account = found.get(offer.get("agent_id") or offer.get("slave_id"))
            if account is not None:
                account.held_offers = add(account.held_offers, scalars(offer.get("resources")))
        for task in framework.get("tasks", []):
            account = found.get(task.get("slave_id"))
            if account is not None and task.get("state") not in TERMINAL_STATES:
                account.live_tasks = add(account.live_tasks, scalars(task.get("resources")))
    return found


TERMINAL_STATES = frozenset(
    {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE"}
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------------------------------- processes


def restarted(launcher, process):
    """`process` (a MesoliteProcess of `launcher`) killed if it still runs, and started again with the
    same arguments and port; waits until it answers /health."""
    if process.process.poll() is None:
        process.kill()
    arguments = process.arguments[3:]  # [python, -m, mesolite.cli, *arguments]
    health = "/v2/apps" if arguments[0] == "marathon" else "/health"
    return launcher.start(process.name, *arguments, port=process.port, health_path=health, timeout=60)


# ------------------------------------------------------------------------------------------- a framework


class BackgroundFramework:
    """A well-behaved framework, subscribed from a thread: it keeps the offers it is sent (so that fuzzed
    ACCEPTs and DECLINEs name real offers), acknowledges every update, and re-subscribes with its id when
    its stream ends (a fuzzed call may take it over, or the master may be restarted)."""

    def __init__(self, port: int, name: str = "fuzz-framework"):
        self.port = port
        self.name = name
        self.framework_id: str | None = None
        self.stream_id: str | None = None
        self.offers: dict[str, dict] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.stopping = False
        self._connection: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self, timeout: float = 30) -> None:
        self._thread.start()
        if not self.subscribed.wait(timeout):
            raise AssertionError(f"{self.name} could not subscribe within {timeout}s")

    def stop(self) -> None:
        self.stopping = True
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)

    def call(self, call: dict) -> Reply:
        body = {"framework_id": {"value": self.framework_id}, **call}
        return request(
            self.port,
            "POST",
            "/api/v1/scheduler",
            encode_json(body),
            {"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id or ""},
        )

    def current_offers(self) -> list[dict]:
        with self.lock:
            return list(self.offers.values())

    def forget_offers(self, offer_ids: list[str]) -> None:
        with self.lock:
            for offer_id in offer_ids:
                self.offers.pop(offer_id, None)

    def wait_for_offers(self, timeout: float = 5) -> list[dict]:
        if not self.current_offers():
            self.call({"type": "REVIVE"})
        return wait_until(self.current_offers, timeout) or []

    def _run(self) -> None:
        from mesolite.protocol.recordio import RecordIOReader

        while not self.stopping:
            self.subscribed.clear()
            info: dict = {"user": "root", "name": self.name, "failover_timeout": 3600, "roles": ["*"],
                          "capabilities": [{"type": "MULTI_ROLE"}]}  # fmt: skip
            call: dict = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
            if self.framework_id:
                call["framework_id"] = info["id"] = {"value": self.framework_id}
            connection = self._connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                connection.request(
                    "POST", "/api/v1/scheduler", json.dumps(call), {"Content-Type": "application/json",
                    "Accept": "application/recordio"},
                )  # fmt: skip
                response = connection.getresponse()
                if response.status == 403:  # removed (a fuzzed TEARDOWN): start over as a new framework
                    self.framework_id = None
                if response.status != 200:
                    response.read()
                    time.sleep(0.5)
                    continue
                self.stream_id = response.getheader("Mesos-Stream-Id")
                with self.lock:
                    self.offers.clear()
                reader = RecordIOReader()
                while not self.stopping:
                    chunk = response.read1(65536)
                    if not chunk:
                        break
                    for record in reader.feed(chunk):
                        self._on_event(json.loads(record))
            except (OSError, http.client.HTTPException, ValueError):
                time.sleep(0.5)
            finally:
                connection.close()

    def _on_event(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "SUBSCRIBED":
            self.framework_id = event["subscribed"]["framework_id"]["value"]
            self.subscribed.set()
        elif kind == "OFFERS":
            with self.lock:
                for offer in event["offers"].get("offers", []):
                    self.offers[offer["id"]["value"]] = offer
        elif kind == "RESCIND":
            self.forget_offers([event["rescind"]["offer_id"]["value"]])
        elif kind == "UPDATE":
            status = event["update"]["status"]
            if status.get("uuid"):
                threading.Thread(
                    target=self.call,
                    args=({"type": "ACKNOWLEDGE", "acknowledge": {"agent_id": status["agent_id"],
                           "task_id": status["task_id"], "uuid": status["uuid"]}},),
                    daemon=True,
                ).start()  # fmt: skip
