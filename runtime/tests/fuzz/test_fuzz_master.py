"""Fuzz the master's v1 scheduler API (POST /api/v1/scheduler) with a real master, agent and framework.

Calls are built from valid templates of every call type, filled with the real ids of the moment (the
framework's id and stream, the agent, offers the framework holds, a task it launched) and then mutated;
raw bodies (invalid UTF-8, truncated JSON, odd charsets) are sent too. After every example:
- no answer >= 500, and an answer at all within REQUEST_TIMEOUT;
- the master and the agent still answer /health (the agent process did not exit);
- per agent of /master/state: offered_resources = the offers frameworks hold there, used_resources = the
  resources of its live tasks, and total = offered + used + idle with idle >= 0; after a REVIVE the idle
  part is offered again (nothing leaked: total = offered + used);
- the agent's own /state reports the total the master has, and (eventually) the same used resources.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from agent_testing import AgentHome
from hypothesis import given, settings
from hypothesis import strategies as st
from master_helpers import start_master

from harness.processes import MesoliteProcess, ProcessLauncher
from harness.waiting import wait_for
from harness.zookeeper import ZooKeeperServer

from .conftest import examples
from .fuzz_testing import (
    ODD_CONTENT_TYPES,
    SCALARS,
    BackgroundFramework,
    PropertyFailure,
    Reply,
    accounts,
    answers_health,
    differs,
    encode_json,
    fail,
    mutated,
    raw_bodies,
    request,
    scalars,
    shown,
    wait_until,
)

pytestmark = pytest.mark.integration

SECTION = "master"
# What a real agent would run: only ever replaced by non-strings (see fuzz_testing's docstring).
PROTECTED = ("command", "health_check", "check", "uris")
SETTLE_SECONDS = 8.0  # how long idle resources may take to be offered again, on a loaded machine


@dataclass
class MasterCluster:
    """One master, one real agent and the background framework, on their own ZooKeeper chroot."""

    launcher: ProcessLauncher
    zookeeper: ZooKeeperServer
    directory: Path
    master: MesoliteProcess | None = None
    agent: MesoliteProcess | None = None
    home: AgentHome | None = None
    framework: BackgroundFramework | None = None
    dirty: bool = True
    generation: int = 0
    launched: list[str] = field(default_factory=list)

    @property
    def agent_id(self) -> str:
        slaves = self.master_state().get("slaves", [])
        return slaves[0]["id"] if slaves else "no-agent"

    def master_state(self) -> dict:
        reply = request(self.master.port, "GET", "/master/state")
        return reply.json() if reply.status == 200 else {}

    def registered_agents(self) -> int:
        return sum(1 for agent in self.master_state().get("slaves", []) if agent.get("active"))

    def ensure_clean(self) -> None:
        """After a failed example, a new cluster: a leak or a dead process must not fail the next examples
        (hypothesis replays the failing one while shrinking it, and needs the others to pass)."""
        if not self.dirty:
            return
        self.stop()
        self.generation += 1
        directory = self.directory / f"cluster-{self.generation}"
        directory.mkdir()
        zk_url = self.zookeeper.url()
        self.home = AgentHome.create(directory)
        self.master = start_master(
            self.launcher,
            f"--zk={zk_url}",
            "--zk_session_timeout=2secs",
            "--allocation_interval=100ms",
            "--registry_flush_interval=100ms",
            f"--work_dir={directory / 'master'}",
        )
        self.agent = self.launcher.start("agent", *self.home.arguments(zk_url), port=self.home.port)
        wait_for(lambda: self.registered_agents() == 1, 60, what="the agent to register")
        self.framework = BackgroundFramework(self.master.port)
        self.framework.start()
        self.launched = []
        self.dirty = False

    def stop(self) -> None:
        if self.framework is not None:
            self.framework.stop()
        for process in (self.agent, self.master):
            if process is not None and process.process.poll() is None:
                process.kill()
        if self.home is not None:
            self.home.remove_tasks()


@pytest.fixture(scope="module")
def cluster(zookeeper: ZooKeeperServer, module_launcher: ProcessLauncher, tmp_path_factory):
    cluster = MasterCluster(module_launcher, zookeeper, tmp_path_factory.mktemp("clusters"))
    cluster.ensure_clean()
    yield cluster
    cluster.stop()
    module_launcher.stop_all()


# ------------------------------------------------------------------------------------------- templates


def task_info(task_id: str, agent_id: str) -> dict:
    return {
        "name": task_id,
        "task_id": {"value": task_id},
        "agent_id": {"value": agent_id},
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 16}},
        ],
        "command": {"value": "true"},
    }


def templates(cluster: MasterCluster, offer_ids: list[str], agent_id: str) -> dict[str, dict]:
    """A valid call of every type, with the ids of the moment."""
    framework_id = {"value": cluster.framework.framework_id}
    agent = {"value": agent_id}
    task_id = cluster.launched[-1] if cluster.launched else "fuzz-no-task"
    offers = [{"value": offer_id} for offer_id in offer_ids] or [{"value": "no-such-offer"}]
    new_task = f"fuzz-{uuid.uuid4().hex[:8]}"
    status_uuid = base64.b64encode(uuid.uuid4().bytes).decode()
    return {
        "SUBSCRIBE": {
            "type": "SUBSCRIBE",
            "subscribe": {
                "framework_info": {
                    "user": "root",
                    "name": "fuzzed",
                    "roles": ["*"],
                    "failover_timeout": 0,
                    "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}],
                },
                "suppressed_roles": [],
            },
        },
        "ACCEPT": {
            "type": "ACCEPT",
            "framework_id": framework_id,
            "accept": {
                "offer_ids": offers,
                "operations": [{"type": "LAUNCH", "launch": {"task_infos": [task_info(new_task, agent_id)]}}],
                "filters": {"refuse_seconds": 0.1},
            },
        },
        "ACCEPT_GROUP": {
            "type": "ACCEPT",
            "framework_id": framework_id,
            "accept": {
                "offer_ids": offers,
                "operations": [
                    {
                        "type": "LAUNCH_GROUP",
                        "launch_group": {
                            "executor": {
                                "type": "DEFAULT",
                                "executor_id": {"value": f"{new_task}-executor"},
                                "framework_id": framework_id,
                                "resources": [
                                    {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.01}},
                                    {"name": "mem", "type": "SCALAR", "scalar": {"value": 16}},
                                ],
                            },
                            "task_group": {"tasks": [task_info(new_task, agent_id)]},
                        },
                    }
                ],
            },
        },
        "DECLINE": {
            "type": "DECLINE",
            "framework_id": framework_id,
            "decline": {"offer_ids": offers, "filters": {"refuse_seconds": 0.1}},
        },
        "KILL": {
            "type": "KILL",
            "framework_id": framework_id,
            "kill": {
                "task_id": {"value": task_id},
                "agent_id": agent,
                "kill_policy": {"grace_period": {"nanoseconds": 1_000_000}},
            },
        },
        "RECONCILE": {
            "type": "RECONCILE",
            "framework_id": framework_id,
            "reconcile": {"tasks": [{"task_id": {"value": task_id}, "agent_id": agent}]},
        },
        "ACKNOWLEDGE": {
            "type": "ACKNOWLEDGE",
            "framework_id": framework_id,
            "acknowledge": {"agent_id": agent, "task_id": {"value": task_id}, "uuid": status_uuid},
        },
        "REVIVE": {"type": "REVIVE", "framework_id": framework_id, "revive": {"roles": ["*"]}},
        "SUPPRESS": {"type": "SUPPRESS", "framework_id": framework_id, "suppress": {"roles": ["*"]}},
        "SHUTDOWN": {
            "type": "SHUTDOWN",
            "framework_id": framework_id,
            "shutdown": {"executor_id": {"value": "fuzz-executor"}, "agent_id": agent},
        },
        "MESSAGE": {
            "type": "MESSAGE",
            "framework_id": framework_id,
            "message": {"agent_id": agent, "executor_id": {"value": task_id}, "data": "aGVsbG8="},
        },
        "REQUEST": {"type": "REQUEST", "framework_id": framework_id, "request": {"requests": [{"agent_id": agent}]}},
        "UPDATE_FRAMEWORK": {
            "type": "UPDATE_FRAMEWORK",
            "framework_id": framework_id,
            "update_framework": {"framework_info": {"user": "root", "name": "fuzz-framework", "id": framework_id}},
        },
    }


CALL_KINDS = sorted(["SUBSCRIBE", "ACCEPT", "ACCEPT_GROUP", "DECLINE", "KILL", "RECONCILE", "ACKNOWLEDGE", "REVIVE",
                     "SUPPRESS", "SHUTDOWN", "MESSAGE", "REQUEST", "UPDATE_FRAMEWORK"])  # fmt: skip
# Call types a mutation may swap in; never TEARDOWN (it would remove the test's own framework).
SWAPPABLE_TYPES = ["SUBSCRIBE", "ACCEPT", "DECLINE", "KILL", "RECONCILE", "ACKNOWLEDGE", "REVIVE", "SUPPRESS",
                   "SHUTDOWN", "MESSAGE", "REQUEST", "ACCEPT_INVERSE_OFFERS", "UPDATE_FRAMEWORK", "LAUNCH",
                   "LAUNCH_GROUP", "RESERVE", "CREATE"]  # fmt: skip


def launched_task_id(accept: dict) -> str:
    operation = accept["accept"]["operations"][0]
    tasks = (
        operation["launch"]["task_infos"] if "launch" in operation else operation["launch_group"]["task_group"]["tasks"]
    )
    return tasks[0]["task_id"]["value"]


def anonymized(body: bytes, cluster: MasterCluster, agent_id: str, offer_ids: list[str]) -> str:
    """The body as a finding shows it: the ids of this run replaced by what they stand for."""
    text = shown(body, 600)
    replacements = {cluster.framework.framework_id or "-": "<FRAMEWORK_ID>", agent_id: "<AGENT_ID>"}
    replacements |= {offer_id: "<OFFER_ID>" for offer_id in offer_ids}
    for value, name in replacements.items():
        if value:
            text = text.replace(value, name)
    return text


# ------------------------------------------------------------------------------------------- properties


def check_properties(cluster: MasterCluster, kind: str, shown_request: str, reply: Reply, where: str) -> None:
    try:
        _check_properties(cluster, kind, shown_request, reply, where)
    except PropertyFailure:
        cluster.dirty = True
        raise


def _check_properties(cluster: MasterCluster, kind: str, shown_request: str, reply: Reply, where: str) -> None:
    def failed(prop: str, detail: str = "") -> None:
        fail(SECTION, kind, prop, shown_request, reply, detail, where)

    if reply.status == 0:
        failed("no answer", reply.error)
    if reply.status >= 500:
        failed("status >= 500")
    if not answers_health(cluster.master.port):
        failed("master stopped answering /health")
    if cluster.agent.process.poll() is not None:
        failed("agent process exited", f"exit status {cluster.agent.process.returncode}")
    if not answers_health(cluster.agent.port):
        failed("agent stopped answering /health")

    state = cluster.master_state()
    for account in accounts(state).values():
        if differs(account.offered, account.held_offers):
            failed("agent offered_resources != offers held by frameworks (offer leak)",
                   f"offered {account.offered}, held {account.held_offers}")  # fmt: skip
        if differs(account.used, account.live_tasks):
            failed("agent used_resources != resources of its live tasks",
                   f"used {account.used}, tasks {account.live_tasks}")  # fmt: skip
        if any(value < -1e-6 for value in account.idle.values()):
            failed("total < offered + used (over-allocated)", f"idle {account.idle}")

    # Everything not used must come back as offers (REVIVE clears the refusal filters and SUPPRESS).
    cluster.framework.call({"type": "REVIVE"})

    def settled() -> dict | None:
        current = accounts(cluster.master_state())
        if current and all(
            not differs(a.total, {n: a.offered[n] + a.used[n] for n in SCALARS}) for a in current.values()
        ):
            return current
        return None

    if wait_until(settled, SETTLE_SECONDS, interval=0.1) is None:
        leftover = {a.agent_id[-6:]: a.idle for a in accounts(cluster.master_state()).values()}
        failed("resources neither offered nor used after REVIVE (leaked)", f"idle per agent: {leftover}")

    agent_state = request(cluster.agent.port, "GET", "/state")
    if agent_state.status != 200:
        failed("agent /state failed", agent_state.text())
    agent_view = agent_state.json()
    account = accounts(cluster.master_state()).get(agent_view.get("id", ""))
    if account is not None:
        if differs(scalars(agent_view.get("resources")), account.total):
            failed("agent total differs from the master's", f"agent {agent_view.get('resources')}")

        def same_used() -> bool:
            agent_used = scalars(request(cluster.agent.port, "GET", "/state").json().get("used_resources"))
            master_account = accounts(cluster.master_state()).get(account.agent_id)
            return master_account is not None and not differs(agent_used, master_account.used)

        if not wait_until(same_used, SETTLE_SECONDS, interval=0.2):
            failed("agent used_resources never matches the master's",
                   f"agent {request(cluster.agent.port, 'GET', '/state').json().get('used_resources')}")  # fmt: skip


# ------------------------------------------------------------------------------------------- the tests


def send_call(cluster: MasterCluster, body: bytes, headers: dict[str, str], subscribe: bool) -> Reply:
    return request(cluster.master.port, "POST", "/api/v1/scheduler", body, headers, stream=subscribe)


@pytest.mark.timeout(900)
# ~3 s per example (each waits for the agent's resources to settle back into offers): 40 keep CI near 2 min;
# `make fuzz` runs the long profile.
@settings(max_examples=examples(40))
@given(data=st.data())
def test_scheduler_calls_mutated(cluster: MasterCluster, data) -> None:
    """A valid call of each type with one to three fields mutated; real offer, agent and framework ids."""
    cluster.ensure_clean()
    kind = data.draw(st.sampled_from(CALL_KINDS), label="kind")
    # One offer slot whatever the moment holds: the drawn mutations must not depend on external state.
    offers = cluster.framework.wait_for_offers()[:1] if kind.startswith(("ACCEPT", "DECLINE")) else []
    offer_ids = [offer["id"]["value"] for offer in offers]
    agent_id = offers[0]["agent_id"]["value"] if offers else cluster.agent_id
    template = templates(cluster, offer_ids, agent_id)[kind]
    call, where = data.draw(mutated(template, PROTECTED, {"type": SWAPPABLE_TYPES}), label="call")
    stream = data.draw(st.sampled_from(["real", "real", "real", "missing", "odd"]), label="Mesos-Stream-Id")
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if stream == "real":
        headers["Mesos-Stream-Id"] = cluster.framework.stream_id or ""
    elif stream == "odd":
        headers["Mesos-Stream-Id"] = "not-a-stream"
    body = encode_json(call)
    subscribe = isinstance(call, dict) and call.get("type") == "SUBSCRIBE"
    reply = send_call(cluster, body, headers, subscribe)
    if reply.status == 202 and kind.startswith(("ACCEPT", "DECLINE")):
        cluster.framework.forget_offers(offer_ids)
        if kind.startswith("ACCEPT"):
            cluster.launched.append(launched_task_id(template))
    shown_request = (
        f"POST /api/v1/scheduler (Mesos-Stream-Id: {stream}) {anonymized(body, cluster, agent_id, offer_ids)}"
    )
    check_properties(cluster, kind, shown_request, reply, where)


@pytest.mark.timeout(900)
@settings(max_examples=examples(60))
@given(data=st.data())
def test_scheduler_raw_bodies(cluster: MasterCluster, data) -> None:
    """Bodies that are not valid JSON (or not UTF-8), under ordinary and odd Content-Types."""
    cluster.ensure_clean()
    kind = data.draw(st.sampled_from(["ACCEPT", "SUBSCRIBE", "RECONCILE"]), label="kind")
    offers = cluster.framework.current_offers()[:1]
    offer_ids = [offer["id"]["value"] for offer in offers]
    agent_id = offers[0]["agent_id"]["value"] if offers else cluster.agent_id
    valid = json.dumps(templates(cluster, offer_ids, agent_id)[kind]).encode()
    body = data.draw(raw_bodies(valid), label="body")
    content_type = data.draw(st.sampled_from(ODD_CONTENT_TYPES), label="Content-Type")
    headers = {"Mesos-Stream-Id": cluster.framework.stream_id or ""}
    if content_type:
        headers["Content-Type"] = content_type
    reply = send_call(cluster, body, headers, subscribe=kind == "SUBSCRIBE")
    shown_body = anonymized(body, cluster, agent_id, offer_ids)
    shown_request = f"POST /api/v1/scheduler (Content-Type: {content_type or 'none'}) {shown_body}"
    check_properties(cluster, f"raw {kind}", shown_request, reply, where=f"raw body, Content-Type {content_type!r}")
