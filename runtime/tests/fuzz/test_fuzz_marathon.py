"""Fuzz Marathon's /v2 API with a real master, agent and Marathon (started once for the module).

Bodies start from valid app and group definitions and are mutated (see fuzz_testing), or are not JSON at
all (invalid UTF-8, truncated, odd Content-Types); paths and queries get odd ids and values. After every
example:
- no answer >= 500, and an answer at all within REQUEST_TIMEOUT;
- Marathon still answers /ping (and its process runs);
- a request answered 4xx changed nothing stored: the apps (their definitions and versions) and the group
  tree are the same before and after it.
And a valid app, created, then sent only invalid updates, stays exactly as it was (definition and versions).
"""

from __future__ import annotations

import itertools
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from agent_testing import AgentHome
from hypothesis import given, settings
from hypothesis import strategies as st
from marathon_testing import start_marathon
from master_helpers import start_master

from harness.processes import MesoliteProcess, ProcessLauncher
from harness.waiting import wait_for
from harness.zookeeper import ZooKeeperServer

from .conftest import examples
from .fuzz_testing import (
    ODD_CONTENT_TYPES,
    Reply,
    encode_json,
    fail,
    hostile_scalars,
    mutated,
    odd_strings,
    quote_path,
    raw_bodies,
    request,
    response_head,
    shown,
)

pytestmark = pytest.mark.integration

SECTION = "marathon"
JSON = {"Content-Type": "application/json"}
# What an agent would run (or fetch): only ever replaced by non-strings (see fuzz_testing's docstring).
PROTECTED = ("cmd", "args", "command", "fetch", "uris", "container", "image", "executor")
# What the running system changes by itself; the rest of an app (its definition and version) must not change
# when a request is refused.
VOLATILE_FIELDS = frozenset(
    {"tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy", "deployments", "tasks",
     "readinessCheckResults", "lastTaskFailure", "taskStats"}
)  # fmt: skip
BASE_APP = "/fuzz/base"
BASE_GROUP = "/fuzzgroup"
MAX_FUZZED_APPS = 15  # accepted creates are removed beyond this many, so that every request stays cheap


def app_definition(app_id: str) -> dict[str, Any]:
    """A valid app with most kinds of fields; instances 0 so that nothing has to launch (a mutation may ask
    for some: the agent is small, so few can)."""
    return {
        "id": app_id,
        "cmd": "sleep 600",
        "instances": 0,
        "cpus": 0.01,
        "mem": 16,
        "disk": 0,
        "labels": {"fuzz": "yes", "owner": "test"},
        "env": {"FUZZ": "1"},
        "constraints": [["hostname", "UNIQUE"]],
        "portDefinitions": [{"port": 0, "protocol": "tcp", "name": "http", "labels": {"VIP_0": "/fuzz:80"}}],
        "healthChecks": [
            {
                "protocol": "TCP",
                "portIndex": 0,
                "gracePeriodSeconds": 300,
                "intervalSeconds": 60,
                "timeoutSeconds": 20,
                "maxConsecutiveFailures": 3,
            }
        ],
        "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
        "unreachableStrategy": {"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600},
        "backoffSeconds": 1,
        "backoffFactor": 1.15,
        "maxLaunchDelaySeconds": 300,
        "killSelection": "YOUNGEST_FIRST",
        "requirePorts": False,
        "dependencies": [],
    }


def group_definition(group_id: str) -> dict[str, Any]:
    return {
        "id": group_id,
        "apps": [app_definition(f"{group_id}/web")],
        "groups": [{"id": f"{group_id}/inner", "apps": [app_definition(f"{group_id}/inner/worker")]}],
        "dependencies": [],
    }


@dataclass
class MarathonCluster:
    """A master, an agent and Marathon on their own ZooKeeper chroot."""

    launcher: ProcessLauncher
    zookeeper: ZooKeeperServer
    directory: Path
    master: MesoliteProcess | None = None
    agent: MesoliteProcess | None = None
    marathon: MesoliteProcess | None = None
    home: AgentHome | None = None

    def start(self) -> None:
        root = self.zookeeper.url("")
        self.home = AgentHome.create(self.directory)
        self.master = start_master(
            self.launcher,
            f"--zk={root}/mesos",
            "--zk_session_timeout=2secs",
            "--allocation_interval=100ms",
            f"--work_dir={self.directory / 'master'}",
        )
        arguments = self.home.arguments(f"{root}/mesos")
        # A small agent: a mutation that asks for instances can get a few, never a machine's worth.
        small = "--resources=cpus:0.1;mem:128;disk:64;ports:[31000-31009]"
        arguments = [small if argument.startswith("--resources=") else argument for argument in arguments]
        self.agent = self.launcher.start("agent", *arguments, port=self.home.port)
        self.marathon = start_marathon(self.launcher, f"{root}/mesos", f"{root}/marathon")
        wait_for(lambda: self.get("/v2/info").status == 200, 30, what="Marathon to lead")

    def stop(self) -> None:
        for process in (self.marathon, self.agent, self.master):
            if process is not None and process.process.poll() is None:
                process.kill()
        if self.home is not None:
            self.home.remove_tasks()

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        data = encode_json(body) if body is not None else None
        return request(self.marathon.port, method, path, data, headers or (JSON if data is not None else None))

    def get(self, path: str) -> Reply:
        return request(self.marathon.port, "GET", path)

    def snapshot(self) -> dict[str, Any]:
        """What is stored: every app (definition and version) and the group tree (ids, dependencies)."""
        apps = self.get("/v2/apps")
        groups = self.get("/v2/groups")
        if apps.status != 200 or groups.status != 200:
            return {"error": f"/v2/apps {apps.status}, /v2/groups {groups.status}"}
        return {
            "apps": {app["id"]: stable(app) for app in apps.json()["apps"]},
            "groups": group_tree(groups.json()),
        }

    def app_ids(self) -> list[str]:
        apps = self.get("/v2/apps")
        return [app["id"] for app in apps.json()["apps"]] if apps.status == 200 else []

    def ensure_base(self) -> None:
        """The app and the group that updates name exist (an accepted request may have removed them), and
        what accepted creates left is removed once there is much of it."""
        # A deployment an accepted update started (instances the small agent cannot run) would lock the base
        # apps, and every later update of them would be a 409 that never reaches the validation.
        deployments = self.get("/v2/deployments")
        for deployment in deployments.json() if deployments.status == 200 else []:
            self.call("DELETE", f"/v2/deployments/{deployment['id']}?force=true")
        ids = self.app_ids()
        fuzzed = [app_id for app_id in ids if not app_id.startswith((f"{BASE_APP}", f"{BASE_GROUP}/"))]
        if len(fuzzed) > MAX_FUZZED_APPS:
            root = self.get("/v2/groups")
            top = [group["id"] for group in root.json().get("groups", [])] if root.status == 200 else []
            for group_id in top:
                if group_id not in ("/fuzz", BASE_GROUP):
                    self.call("DELETE", f"/v2/groups{quote_path(group_id)}?force=true")
            for app_id in self.app_ids():
                if app_id != BASE_APP and not app_id.startswith(f"{BASE_GROUP}/"):
                    self.call("DELETE", f"/v2/apps{quote_path(app_id)}?force=true")
        if BASE_APP not in ids:
            reply = self.call("PUT", f"/v2/apps{BASE_APP}?force=true", app_definition(BASE_APP))
            assert reply.status in (200, 201), f"cannot restore {BASE_APP}: {reply.status} {reply.text()}"
        if f"{BASE_GROUP}/web" not in ids:
            reply = self.call("PUT", f"/v2/groups{BASE_GROUP}?force=true", group_definition(BASE_GROUP))
            assert reply.status in (200, 201), f"cannot restore {BASE_GROUP}: {reply.status} {reply.text()}"


def stable(app: dict) -> dict:
    return {name: value for name, value in app.items() if name not in VOLATILE_FIELDS}


def group_tree(group: dict) -> dict:
    return {
        "id": group.get("id"),
        "dependencies": group.get("dependencies"),
        "version": group.get("version"),
        "apps": sorted(app["id"] for app in group.get("apps", [])),
        "groups": [group_tree(child) for child in group.get("groups", [])],
    }


@pytest.fixture(scope="module")
def cluster(zookeeper: ZooKeeperServer, module_launcher: ProcessLauncher, tmp_path_factory):
    cluster = MarathonCluster(module_launcher, zookeeper, tmp_path_factory.mktemp("marathon-cluster"))
    cluster.start()
    cluster.ensure_base()
    yield cluster
    cluster.stop()
    module_launcher.stop_all()


# ------------------------------------------------------------------------------------------- properties


def difference(before: dict, after: dict) -> str:
    """A short account of what changed between two snapshots."""
    if "error" in before or "error" in after:
        return f"snapshot failed: {before.get('error') or after.get('error')}"
    apps_before, apps_after = before["apps"], after["apps"]
    added = sorted(set(apps_after) - set(apps_before))
    removed = sorted(set(apps_before) - set(apps_after))
    changed = []
    for app_id in sorted(set(apps_before) & set(apps_after)):
        fields = {k for k in apps_before[app_id].keys() | apps_after[app_id].keys()
                  if apps_before[app_id].get(k) != apps_after[app_id].get(k)}  # fmt: skip
        if fields:
            changed.append(f"{app_id} ({', '.join(sorted(fields))})")
    groups = "" if before["groups"] == after["groups"] else "; the group tree changed"
    return f"added {added}, removed {removed}, changed {changed}{groups}"


def check_properties(
    cluster: MarathonCluster, kind: str, shown_request: str, reply: Reply, before: dict, where: str
) -> None:
    def failed(prop: str, detail: str = "") -> None:
        fail(SECTION, kind, prop, shown_request, reply, detail, where)

    if reply.status == 0:
        failed("no answer", reply.error)
    if reply.status >= 500:
        failed("status >= 500")
    if cluster.marathon.process.poll() is not None:
        failed("Marathon process exited", f"exit status {cluster.marathon.process.returncode}")
    ping = cluster.get("/ping")
    if ping.status != 200:
        failed("Marathon stopped answering /ping", f"{ping.status} {ping.text()}")
    if 400 <= reply.status < 500:
        after = cluster.snapshot()
        if after != before:
            failed("a refused request changed what is stored", difference(before, after))


def shown_request(method: str, path: str, headers: dict[str, str], body: bytes | None) -> str:
    content_type = f" (Content-Type: {headers.get('Content-Type', 'none')})" if body is not None else ""
    return f"{method} {shown(path, 200)}{content_type} {shown(body or b'', 600)}".rstrip()


# ------------------------------------------------------------------------------------------- the tests

_new_ids = itertools.count()

# (kind, method, path, template): `path` and the template's ids are filled in per example.
BODY_KINDS = ["create app", "update app", "patch app", "replace app", "update apps", "create group",
              "update group", "create subgroup"]  # fmt: skip


def body_request(kind: str) -> tuple[str, str, Any]:
    """(method, path, valid body) of a request of `kind`; creates name a new id every time."""
    new = f"/fuzz/new-{next(_new_ids)}"
    if kind == "create app":
        return "POST", "/v2/apps", app_definition(new)
    if kind == "update app":
        return "PUT", f"/v2/apps{BASE_APP}", {"instances": 0, "cpus": 0.02, "labels": {"updated": "yes"}}
    if kind == "patch app":
        return "PATCH", f"/v2/apps{BASE_APP}", {"mem": 32, "env": {"PATCHED": "1"}}
    if kind == "replace app":
        return "PUT", f"/v2/apps{BASE_APP}?partialUpdate=false", app_definition(BASE_APP)
    if kind == "update apps":
        return "PUT", "/v2/apps", [{"id": BASE_APP, "instances": 0}, {"id": f"{BASE_GROUP}/web", "cpus": 0.02}]
    if kind == "create group":
        return "POST", "/v2/groups", group_definition(f"/fuzzgroup-{next(_new_ids)}")
    if kind == "update group":
        return "PUT", f"/v2/groups{BASE_GROUP}", group_definition(BASE_GROUP)
    if kind == "create subgroup":
        return "POST", f"/v2/groups{BASE_GROUP}", {"id": f"sub-{next(_new_ids)}", "apps": []}
    raise ValueError(kind)


def test_templates_are_accepted(cluster: MarathonCluster) -> None:
    """The fuzzed bodies start from valid ones: each template unmutated is accepted."""
    for kind in BODY_KINDS:
        cluster.ensure_base()
        method, path, template = body_request(kind)
        path += ("&" if "?" in path else "?") + "force=true"
        reply = cluster.call(method, path, template)
        assert 200 <= reply.status < 300, f"{kind}: {method} {path} answered {reply.status} {reply.text()}"


@pytest.mark.timeout(300)
@settings(max_examples=examples(150))
@given(data=st.data())
def test_app_and_group_bodies_mutated(cluster: MarathonCluster, data) -> None:
    """A valid app, apps list or group with one to three fields mutated, sent to create or update."""
    cluster.ensure_base()
    kind = data.draw(st.sampled_from(BODY_KINDS), label="kind")
    method, path, template = body_request(kind)
    body, where = data.draw(mutated(template, PROTECTED), label="body")
    force = data.draw(st.booleans(), label="force")
    if force:
        path += ("&" if "?" in path else "?") + "force=true"
    before = cluster.snapshot()
    data_bytes = encode_json(body)
    reply = request(cluster.marathon.port, method, path, data_bytes, JSON)
    check_properties(cluster, kind, shown_request(method, path, JSON, data_bytes), reply, before, where)


@pytest.mark.timeout(300)
@settings(max_examples=examples(60))
@given(data=st.data())
def test_raw_bodies_and_content_types(cluster: MarathonCluster, data) -> None:
    """Bodies that are not (UTF-8) JSON, and valid ones, under ordinary and odd Content-Types."""
    cluster.ensure_base()
    kind = data.draw(st.sampled_from(["create app", "update app", "create group", "update apps"]), label="kind")
    method, path, template = body_request(kind)
    valid = encode_json(template)
    body = data.draw(st.one_of(st.just(valid), raw_bodies(valid)), label="body")
    content_type = data.draw(st.sampled_from(ODD_CONTENT_TYPES), label="Content-Type")
    headers = {"Content-Type": content_type} if content_type else {}
    before = cluster.snapshot()
    reply = request(cluster.marathon.port, method, path, body, headers)
    where = f"raw body, Content-Type {content_type!r}"
    check_properties(cluster, f"raw {kind}", shown_request(method, path, headers, body), reply, before, where)


def odd_query(names: list[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(st.sampled_from(names), odd_strings())
    return st.lists(pair, max_size=3).map(
        lambda pairs: urllib.parse.urlencode(pairs, errors="surrogatepass") if pairs else ""
    )


# (method, path template, query names): {id} is replaced by an odd or a real id.
READS = [
    ("GET", "/v2/apps", ["embed", "id", "cmd", "label"]),
    ("GET", "/v2/apps/{id}", ["embed"]),
    ("GET", "/v2/apps/{id}/tasks", []),
    ("GET", "/v2/apps/{id}/versions", []),
    ("GET", "/v2/apps/{id}/versions/{odd}", []),
    ("GET", "/v2/apps/{id}/tasks/{odd}", []),
    ("DELETE", "/v2/apps/{odd}", ["force"]),
    ("DELETE", "/v2/apps/{id}/tasks/{odd}", ["scale", "wipe"]),
    ("POST", "/v2/apps/{odd}/restart", ["force"]),
    ("GET", "/v2/groups", ["embed"]),
    ("GET", "/v2/groups/{id}", ["embed"]),
    ("DELETE", "/v2/groups/{odd}", ["force"]),
    ("GET", "/v2/deployments", []),
    ("DELETE", "/v2/deployments/{odd}", ["force"]),
    ("GET", "/v2/tasks", ["status", "status[]"]),
    ("POST", "/v2/tasks/delete", ["scale", "wipe", "force"]),
    ("GET", "/v2/queue", ["embed"]),
    ("DELETE", "/v2/queue/{odd}/delay", []),
    ("GET", "/v2/info", []),
    ("GET", "/v2/leader", []),
    ("GET", "/v2/events", ["event_type"]),
]


@pytest.mark.timeout(300)
@settings(max_examples=examples(120))
@given(data=st.data())
def test_paths_and_queries(cluster: MarathonCluster, data) -> None:
    """Every other endpoint with odd ids in its path and odd query values (the event stream: its status)."""
    cluster.ensure_base()
    method, template, names = data.draw(st.sampled_from(READS), label="endpoint")
    real = data.draw(st.sampled_from([BASE_APP, f"{BASE_GROUP}/web", BASE_GROUP]), label="id")
    odd = data.draw(odd_strings(), label="odd")
    path = template.replace("{id}", real).replace("{odd}", quote_path(odd).lstrip("/"))
    query = data.draw(odd_query(names), label="query") if names else ""
    if query:
        path += "?" + query
    body: bytes | None = None
    if template == "/v2/tasks/delete":
        body = encode_json({"ids": data.draw(st.lists(st.one_of(odd_strings(), hostile_scalars()), max_size=3))})
    before = cluster.snapshot()
    if template == "/v2/events":
        reply = response_head(cluster.marathon.port, method, path)
    else:
        reply = request(cluster.marathon.port, method, path, body, JSON if body is not None else None)
    check_properties(cluster, f"{method} {template}", shown_request(method, path, JSON, body), reply, before,
                     where=f"{method} {template}")  # fmt: skip


# Each one makes an update invalid whatever else it holds (applied after the mutations).
INVALID_FIELDS = [
    ("instances", -1),
    ("instances", "three"),
    ("cpus", -0.5),
    ("mem", "lots"),
    ("disk", -1),
    ("constraints", [["hostname"]]),
    ("constraints", "UNIQUE"),
    ("portDefinitions", [{"port": -5}]),
    ("healthChecks", [{"protocol": "NO-SUCH-PROTOCOL"}]),
    ("upgradeStrategy", {"minimumHealthCapacity": 2}),
    ("backoffFactor", -1),
    ("labels", ["not", "a", "map"]),
    ("env", {"VALUE": {"nested": {"deep": 1}}}),
    ("killSelection", "RANDOM_FIRST"),
    ("id", "/Not/A/Valid/Id"),
]


@pytest.mark.timeout(300)
@settings(max_examples=examples(25))
@given(data=st.data())
def test_invalid_updates_leave_a_valid_app_as_it_was(cluster: MarathonCluster, data) -> None:
    """Create a valid app, then send it one to four invalid updates: each is refused (4xx) and the app, its
    definition and its list of versions, stays exactly as it was created."""
    app_id = f"/fuzz/valid-{next(_new_ids)}"
    app = app_definition(app_id)
    app["cpus"] = data.draw(st.sampled_from([0.01, 0.05, 0.1]), label="cpus")
    app["labels"] = data.draw(
        st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,9}", fullmatch=True), st.text(max_size=20), max_size=4),
        label="labels",
    )
    created = cluster.call("POST", "/v2/apps", app)
    assert created.status == 201, f"a valid app was refused: {created.status} {created.text()}"
    expected = stable(cluster.get(f"/v2/apps{app_id}").json()["app"])
    versions = cluster.get(f"/v2/apps{app_id}/versions").json()
    try:
        for step in range(data.draw(st.integers(min_value=1, max_value=4), label="updates")):
            template = {k: v for k, v in app_definition(app_id).items() if k != "id"}
            body, where = data.draw(mutated(template, PROTECTED), label=f"update {step}")
            field, value = data.draw(st.sampled_from(INVALID_FIELDS), label=f"invalid field {step}")
            body[field] = value
            method = data.draw(st.sampled_from(["PUT", "PATCH"]), label=f"method {step}")
            query = data.draw(st.sampled_from(["", "?force=true", "?partialUpdate=false"]), label=f"query {step}")
            path = f"/v2/apps{app_id}{query}"
            data_bytes = encode_json(body)
            reply = request(cluster.marathon.port, method, path, data_bytes, JSON)
            request_text = shown_request(method, path, JSON, data_bytes)
            where = f"{field}={value!r}; {where}"

            def failed(prop: str, detail: str = "", reply: Reply = reply, request_text: str = request_text,
                       where: str = where) -> None:  # fmt: skip
                fail(SECTION, "invalid update", prop, request_text, reply, detail, where)

            if not 400 <= reply.status < 500:
                failed("an invalid update was not refused with a 4xx")
            if cluster.get("/ping").status != 200:
                failed("Marathon stopped answering /ping")
            shown_now = cluster.get(f"/v2/apps{app_id}")
            if shown_now.status != 200 or stable(shown_now.json()["app"]) != expected:
                failed("a refused update changed the app", shown_now.text())
            if cluster.get(f"/v2/apps{app_id}/versions").json() != versions:
                failed("a refused update added a version of the app")
    finally:
        cluster.call("DELETE", f"/v2/apps{app_id}?force=true")
